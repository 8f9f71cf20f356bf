// A run's page: the runs that retried it (links, from the API), the retry and cancel buttons, live progress.
"use strict";

function runLink(id) {
  const a = document.createElement("a");
  a.href = "/runs/" + encodeURIComponent(id);
  a.className = "mono";
  a.textContent = id;
  return a;
}

async function showRetries(dd) {
  const answer = await request("GET", "/api/runs/" + encodeURIComponent(dd.dataset.taskId));
  dd.textContent = "";
  delete dd.dataset.loading;
  if (!answer.ok) { dd.textContent = answer.data.message; return; }
  if (!answer.data.retried_by.length) { dd.textContent = "— (never retried)"; return; }
  const list = document.createElement("ul");
  list.className = "retries";
  for (const id of answer.data.retried_by) {
    const li = document.createElement("li");
    li.appendChild(runLink(id));
    list.appendChild(li);
  }
  dd.appendChild(list);
}

async function retryRun(event) {
  const id = event.target.dataset.taskId;
  if (!window.confirm(`Send run ${id} again as a new run (same task, arguments and queue)?`)) return;
  const answer = await request("POST", "/api/runs/" + encodeURIComponent(id) + "/retry");
  const out = document.getElementById("retry-outcome");
  out.hidden = false;
  out.className = "outcome " + (answer.ok ? "ok" : "bad");
  out.textContent = answer.data.message + " ";
  if (answer.ok) {
    out.appendChild(runLink(answer.data.celery_task_id));
    showRetries(document.getElementById("run-retried-by"));
  }
}

// JSON as the server writes it (keys sorted, ", " and ": "), so a refreshed progress reads like the first one.
function jsonText(value) {
  if (Array.isArray(value)) return "[" + value.map(jsonText).join(", ") + "]";
  if (value && typeof value === "object") {
    return "{" + Object.keys(value).sort().map((k) => JSON.stringify(k) + ": " + jsonText(value[k])).join(", ") + "}";
  }
  return JSON.stringify(value);
}

const PROGRESS_POLL_MS = 2000;  // a running run's progress, as its task writes it to the result backend

async function followProgress(dd) {
  const answer = await request("GET", "/api/runs/" + encodeURIComponent(dd.dataset.taskId));
  if (answer.ok && answer.data.status !== "running") { window.location.reload(); return; }  // it ended: show how
  if (answer.ok) {
    const p = answer.data.progress;
    dd.textContent = p ? p.state + " " + jsonText(p.meta) : "— (its task reports no state of its own)";
  }
  window.setTimeout(() => followProgress(dd), PROGRESS_POLL_MS);
}

const CANCEL_SAID = "run-cancel-outcome";  // the cancel's answer, shown again after the page reloads

function showCancel(ok, message) {
  const out = document.getElementById("cancel-outcome");
  out.hidden = false;
  out.className = "outcome " + (ok ? "ok" : "bad");
  out.textContent = message;
}

async function cancelRun(event) {
  const id = event.target.dataset.taskId;
  if (!window.confirm(`Cancel run ${id}? A queued run is revoked; a running one is stopped.`)) return;
  event.target.disabled = true;
  const answer = await request("POST", "/scheduler/cancel-run/" + encodeURIComponent(id) + "/");
  if (!answer.ok) { showCancel(false, answer.data.message); event.target.disabled = false; return; }
  window.sessionStorage.setItem(CANCEL_SAID, answer.data.message);
  window.location.reload();  // the run's new state, error and times, as the run log now has them
}

document.addEventListener("DOMContentLoaded", () => {
  const dd = document.getElementById("run-retried-by");
  if (dd) showRetries(dd);
  const button = document.getElementById("retry-run");
  if (button) button.addEventListener("click", retryRun);
  const cancel = document.getElementById("cancel-run");
  if (cancel) cancel.addEventListener("click", cancelRun);
  const said = window.sessionStorage.getItem(CANCEL_SAID);
  if (said) { window.sessionStorage.removeItem(CANCEL_SAID); showCancel(true, said); }
  const progress = document.getElementById("run-progress");
  if (progress) window.setTimeout(() => followProgress(progress), PROGRESS_POLL_MS);
});
