// The results page: act on selected runs or on every run matching the filter (each count confirmed first),
// retry one run; the admin part: delete old results and run the retention clean-up, each confirmed.
"use strict";

function show(text, ok) {
  const el = document.getElementById("delete-outcome");
  el.hidden = false;
  el.textContent = text;
  el.className = "outcome " + (ok ? "ok" : "bad");
}

async function deleteOld(event) {
  event.preventDefault();
  const form = event.target;
  const days = parseInt(form.elements.older_than_days.value, 10);
  const states = [...form.querySelectorAll('input[name="states"]:checked')].map((el) => el.value);
  if (!states.length) { show("Choose at least one state to delete.", false); return; }
  const preview = await request("POST", "/api/runs/delete", { older_than_days: days, states, dry_run: true });
  if (!preview.ok) { show(preview.data.message, false); return; }
  const n = preview.data.would_delete;
  if (!window.confirm(`Delete ${n} run(s) in ${states.join(", ")} older than ${days} days? This cannot be undone.`)) return;
  const done = await request("POST", "/api/runs/delete", { older_than_days: days, states });
  show(done.data.message, done.ok);
}

async function cleanupNow() {
  if (!window.confirm("Delete successful runs older than 30 days now? Failures are kept.")) return;
  const done = await request("POST", "/api/runs/cleanup", {});
  show(done.data.message, done.ok);
}

const DONE_WORD = { retry: "retried", revoke: "revoked", cancel: "cancelled", delete: "deleted" };

function bulkShow(text, ok) {
  const el = document.getElementById("bulk-outcome");
  el.hidden = false;
  el.textContent = text;
  el.className = "outcome " + (ok ? "ok" : "bad");
}

function selectedIds() {
  return [...document.querySelectorAll(".run-select:checked")].map((el) => el.value);
}

function bulkFilter() {
  const args = JSON.parse(document.getElementById("bulk-bar").dataset.filter);
  delete args.sort;  // the order does not change which runs match
  return args;
}

function bulkBody(action, dryRun) {
  const body = { action, filter: bulkFilter(), dry_run: dryRun };
  if (!document.getElementById("bulk-all").checked) body.ids = selectedIds();
  return body;
}

async function countAll() {
  const label = document.getElementById("bulk-all-label");
  const answer = await request("POST", "/api/runs/bulk", { action: "retry", filter: bulkFilter(), dry_run: true });
  label.textContent = answer.ok ? `all ${answer.data.matched} run(s) matching this filter`
                                : "every run matching this filter (" + answer.data.message + ")";
}

function refreshBar() {
  const all = document.getElementById("bulk-all").checked;
  const n = selectedIds().length;
  document.getElementById("bulk-selected").textContent =
    all ? "Every run matching this filter" : (n ? `${n} run(s) selected` : "No run selected");
  document.getElementById("bulk-apply").disabled = !all && !n;
}

async function applyBulk(event) {
  event.preventDefault();
  const action = document.getElementById("bulk-action").value;
  const preview = await request("POST", "/api/runs/bulk", bulkBody(action, true));
  if (!preview.ok) { bulkShow(preview.data.message, false); return; }
  const { matched, applies } = preview.data;
  if (!applies) { bulkShow(`Nothing to ${action}: none of the ${matched} run(s) can be ${DONE_WORD[action]}.`, false); return; }
  const undo = action === "delete" ? " This cannot be undone." : "";
  if (!window.confirm(`${action[0].toUpperCase() + action.slice(1)} ${applies} run(s)` +
                      (applies !== matched ? ` (of the ${matched} matching)` : "") + `?${undo}`)) return;
  const done = await request("POST", "/api/runs/bulk", bulkBody(action, false));
  bulkShow(done.data.message, done.ok);
  await refreshRows();
}

async function retryOne(event) {
  const id = event.target.dataset.taskId;
  if (!window.confirm(`Send run ${id} again as a new run?`)) return;
  const done = await request("POST", "/api/runs/" + encodeURIComponent(id) + "/retry");
  bulkShow(done.data.message, done.ok);
  await refreshRows();
}

async function cancelOne(event) {
  const id = event.target.dataset.taskId;
  if (!window.confirm(`Cancel run ${id}? A queued run is revoked; a running one is stopped.`)) return;
  event.target.disabled = true;
  const done = await request("POST", "/scheduler/cancel-run/" + encodeURIComponent(id) + "/");
  bulkShow(done.data.message, done.ok);
  await refreshRows();
}

// After an action the rows show what the run log says now: this same page (same filter, same cursor) is read
// again and its rows replace these, so no row says STARTED until a reload.
async function refreshRows() {
  const resp = await fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
  if (!resp.ok) return;
  const page = new DOMParser().parseFromString(await resp.text(), "text/html");
  const fresh = page.querySelector("#runs-table tbody");
  if (!fresh) return;
  const picked = new Set(selectedIds());
  document.querySelector("#runs-table tbody").replaceWith(document.adoptNode(fresh));
  for (const box of document.querySelectorAll(".run-select")) box.checked = picked.has(box.value);
  panelTime.refresh(document.querySelector("#runs-table tbody"));
  wireRows();
  refreshBar();
}

function wireRows() {
  for (const box of document.querySelectorAll(".run-select")) box.addEventListener("change", refreshBar);
  for (const button of document.querySelectorAll(".retry-run")) button.addEventListener("click", retryOne);
  for (const button of document.querySelectorAll(".cancel-run")) button.addEventListener("click", cancelOne);
}

function wireBulk() {
  const bar = document.getElementById("bulk-bar");
  if (!bar) return;
  bar.addEventListener("submit", applyBulk);
  document.getElementById("bulk-all").addEventListener("change", (e) => { if (e.target.checked) countAll(); refreshBar(); });
  document.getElementById("select-page").addEventListener("change", (e) => {
    for (const box of document.querySelectorAll(".run-select")) box.checked = e.target.checked;
    refreshBar();
  });
  wireRows();
}

document.addEventListener("DOMContentLoaded", () => {
  wireBulk();
  const form = document.getElementById("delete-form");
  if (!form) return;
  form.addEventListener("submit", deleteOld);
  document.getElementById("cleanup-now").addEventListener("click", cleanupNow);
});
