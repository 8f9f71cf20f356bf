// The results page's admin part: delete old results and run the retention clean-up, each confirmed.
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

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("delete-form");
  if (!form) return;
  form.addEventListener("submit", deleteOld);
  document.getElementById("cleanup-now").addEventListener("click", cleanupNow);
});
