// A run's page: the runs that retried it (links, from the API), and the retry button.
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

document.addEventListener("DOMContentLoaded", () => {
  const dd = document.getElementById("run-retried-by");
  if (dd) showRetries(dd);
  const button = document.getElementById("retry-run");
  if (button) button.addEventListener("click", retryRun);
});
