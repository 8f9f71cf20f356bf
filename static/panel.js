// The dashboard. Plain JavaScript: polls never overlap, pause while the tab is hidden, and every
// action refreshes what it changed at once. Status is always text and icon as well as colour.
"use strict";

const BUSY_POLL_MS = 500;        // while a start or stop runs, and while a run sent now has not started
const FOLLOW_LIMIT_MS = 120000;   // a run followed that long without starting is left to the ordinary poll
const START_COMMAND = "./start_celery_beat.sh";
const TASK_BADGES = {  // a schedule's status as its badge shows it
  running: ["yellow", "⟳ Running"], failed: ["red", "✗ Failed"],
  completed: ["green", "✓ Completed"], pending: ["gray", "… Pending"], unknown: ["gray", "? Ended, outcome unknown"],
};
const TOOLBAR = {
  "run-all": ["Run every enabled task now?", "/scheduler/run-all-tasks/"],
  "stop-all": ["Disable all tasks? Beat will stop sending them.", "/scheduler/stop-all-tasks/"],
  "start-all": ["Enable all tasks? Beat will send them on schedule again.", "/scheduler/start-all-tasks/"],
  "stop-celery": ["Stop Celery? The worker and Beat are terminated; running tasks are marked failed.", "/scheduler/stop-celery/"],
  "start-celery": ["Start Celery (worker and Beat)?", "/scheduler/start-celery/"],
};

let polling = false;
let beatStopped = false;
let busyAction = null;  // "stopping" / "starting" while the page waits for a start or stop it asked for
let shownLog = null;
const $ = (id) => document.getElementById(id);
const canControl = () => $("page-data").dataset.canControl === "true";

function announce(text) { $("live").textContent = text; }

function showOutcome(text, ok) {  // ok: true, false, or null for "in progress"
  const el = $("outcome");
  el.hidden = false;
  const changed = el.textContent !== text;
  el.textContent = text;
  el.className = "outcome " + (ok === null ? "busy" : ok ? "ok" : "bad");
  if (changed) announce(text);
}

function setBadge(id, text, colour, title) {
  const el = $(id);
  const changed = el.textContent !== text;
  el.textContent = text;
  el.className = "badge badge-" + colour + (id === "beat-badge" && beatStopped ? " clickable" : "");
  el.title = title || "";
  if (changed && text !== "Checking...") announce(id.replace("-badge", "") + ": " + text);
}

async function getJSON(url) {
  const r = await request("GET", url);
  if (!r.ok) throw new Error(url + " answered " + r.status);
  return r.data;
}

// ---- status (overall and Beat's) ------------------------------------------------------------
function showStartInstructions() {
  if (!beatStopped) return;
  alert("To start Celery Beat, run this command:\n\n" + START_COMMAND +
        "\n\nAfter starting, your schedule changes will take effect automatically.");
}

function renderBeat(data) {
  beatStopped = !data.running && !busyAction;  // while a start or stop runs, the badge is no link to instructions
  if (busyAction) {
    setBadge("beat-badge", BUSY_WORDS[busyAction], "yellow", "Celery Beat is " + busyAction);
  } else if (data.running) {
    const text = data.count > 1 ? "✓ Active (" + data.count + " processes)" : "✓ Active";
    setBadge("beat-badge", text, "green", "PIDs: " + data.pids.join(", "));
  } else {
    setBadge("beat-badge", "⚠️ Stopped", "red", "Celery Beat is not running: click for instructions");
    console.warn("Celery Beat is not running. Start it with " + START_COMMAND);
  }
}

const BUSY_WORDS = { stopping: "… Stopping", starting: "… Starting" };

// The status badge's words and colours for all or nothing; a half-running Celery says which half, never "Stopped" while
// a worker executes tasks.
function overallLook(data) {
  if (data.running) return ["● Running", "green", ""];
  if (data.worker.active) return ["◐ Worker running, Beat stopped", "yellow", "Tasks execute; nothing is sent on schedule"];
  if (data.beat.active) return ["◐ Beat running, no worker", "yellow", "Tasks are sent on schedule; none execute"];
  return ["■ Stopped", "red", ""];
}

function progressWords(p) {
  if (p.action === "starting") return "Starting… (gives up in " + p.grace_left_s + " s)";
  const what = p.running_tasks === null ? "running tasks" : p.running_tasks + " running task(s)";
  return "Stopping… waiting for " + what + " to finish, grace left " + p.grace_left_s + " s";
}

function renderProcesses(data) {
  const p = data.progress || (busyAction ? { action: busyAction, running_tasks: null, grace_left_s: 0 } : null);
  if (p) {
    setBadge("overall-badge", BUSY_WORDS[p.action], "yellow", data.progress ? progressWords(p) : "");
    setBadge("worker-badge", BUSY_WORDS[p.action], "yellow", "");
    if (data.progress && busyAction) showOutcome(progressWords(p), null);
    return;
  }
  const [text, colour, title] = overallLook(data);
  setBadge("overall-badge", text, colour, title);
  const w = data.worker;
  setBadge("worker-badge", w.active ? "✓ Active" : "○ Inactive", w.active ? "green" : "gray",
           w.active ? "PIDs: " + w.pids.join(", ") + " (" + w.pool_processes + " pool processes)" : "");
}

async function refreshStatus() {
  const [beat, procs] = await Promise.allSettled([getJSON("/celery_status"), getJSON("/scheduler/celery-status/")]);
  if (beat.status === "fulfilled") renderBeat(beat.value);
  else { beatStopped = false; setBadge("beat-badge", "❌ Error", "red", "Cannot check status: " + beat.reason); }
  if (procs.status === "fulfilled") {
    renderProcesses(procs.value);
    document.dispatchEvent(new CustomEvent("celery-status", { detail: procs.value }));  // hosts.js draws the hosts
  } else {
    setBadge("overall-badge", "❌ Error", "red", String(procs.reason));
    setBadge("worker-badge", "❌ Error", "red", String(procs.reason));
  }
}

// ---- tasks (schedules) ----------------------------------------------------------------------
function cell(row, text, cls) {
  const td = document.createElement("td");
  if (text instanceof Node) td.appendChild(text);
  else td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function actionButton(label, title, handler, cls) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.title = title;
  b.setAttribute("aria-label", title);
  if (cls) b.className = cls;
  b.disabled = !canControl();
  b.addEventListener("click", handler);
  return b;
}

function renderTasks(tasks) {
  const body = $("tasks-body");
  body.replaceChildren();
  if (!tasks.length) { cell(body.insertRow(), "No scheduled tasks yet.").colSpan = 8; return; }
  for (const t of tasks) {
    const row = body.insertRow();
    row.dataset.taskId = t.id;
    cell(row, t.name);
    cell(row, t.task, "mono");
    cell(row, t.crontab ? "cron " + t.crontab : "every " + t.interval_seconds + " s", "mono");
    cell(row, t.enabled ? panelTime.element(t.next_run_at) : "disabled" + (t.disabled_reason ? ": " + t.disabled_reason : ""));
    cell(row, panelTime.element(t.last_run_at));
    cell(row, String(t.run_count));
    const [colour, label] = TASK_BADGES[t.status] || ["gray", t.status];
    const badge = document.createElement("span");
    badge.className = "badge badge-" + colour + " task-status";
    badge.textContent = label;
    cell(row, "").appendChild(badge);
    const actions = cell(row, "", "actions");
    if (t.status === "running") {
      actions.appendChild(actionButton("✕", "Cancel " + t.name, () => cancelTask(t), "cancel-x"));
    }
    actions.appendChild(actionButton("Run now", "Run now: " + t.name, () => runNow(t)));
    actions.appendChild(t.enabled
      ? actionButton("Disable", "Disable " + t.name, () => taskAction(t, "disable", t.name + " disabled"))
      : actionButton("Enable", "Enable " + t.name, () => taskAction(t, "enable", t.name + " enabled")));
    actions.appendChild(actionButton("Edit", "Edit " + t.name, () => openTaskForm(t)));
  }
}

async function refreshTasks() {
  try { renderTasks((await getJSON("/api/tasks")).tasks); }
  catch (e) { showOutcome("Could not load tasks: " + e.message, false); }
}

async function taskAction(t, verb, message) {
  const r = await request("POST", "/api/tasks/" + t.id + "/" + verb);
  showOutcome(r.ok ? message : r.data.message, r.ok);
  await refreshTasks();
}

// After Run now the row follows that run (its JSON, polled quickly and for a bounded time) until it runs or ends.
async function runNow(t) {
  const r = await request("POST", "/api/tasks/" + t.id + "/run");
  showOutcome(r.ok ? "Sent " + t.name : r.data.message, r.ok);
  await refreshTasks();
  if (r.ok && r.data.celery_task_id) followRun(r.data.celery_task_id);
}

async function followRun(celeryTaskId) {
  const until = Date.now() + FOLLOW_LIMIT_MS;
  while (Date.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, BUSY_POLL_MS));
    const r = await request("GET", "/api/runs/" + encodeURIComponent(celeryTaskId));
    if (r.ok && r.data.status !== "pending") { await refreshTasks(); return; }  // running, or already ended
  }
}

async function cancelTask(t) {
  if (!confirm("Cancel the running task " + t.name + "? It will be stopped and marked as failed.")) return;
  const r = await request("POST", "/scheduler/cancel-task/" + t.id + "/");
  const extra = r.ok && !r.data.confirmed_stopped ? " (its stop could not be confirmed)" : "";
  showOutcome((r.data.message || "Cancel failed") + extra, r.ok);
  await refreshTasks();
}

// ---- the task form and the RESTART NOW flow -------------------------------------------------
function openTaskForm(t) {
  const form = $("task-form");
  form.reset();
  form.querySelectorAll(".field-error").forEach((p) => { p.textContent = ""; });
  $("task-dialog-title").textContent = t ? "Edit " + t.name : "New task";
  form.elements.id.value = t ? t.id : "";
  if (t) {
    form.elements.name.value = t.name;
    form.elements.task.value = t.task;
    form.elements.args.value = JSON.stringify(t.args);
    form.elements.kwargs.value = JSON.stringify(t.kwargs);
    form.elements.kind.value = t.crontab ? "crontab" : "interval";
    form.elements.interval_seconds.value = t.interval_seconds || "";
    form.elements.crontab.value = t.crontab || "";
    form.elements.catch_up.value = t.catch_up || "once";
  }
  $("task-dialog").showModal();
}

// The API takes args as a JSON array and kwargs as a JSON object: the form's text is read here first.
function jsonField(text, kind) {
  const value = JSON.parse(text.trim() || (kind === "array" ? "[]" : "{}"));
  const fits = kind === "array" ? Array.isArray(value) : value !== null && typeof value === "object" && !Array.isArray(value);
  if (!fits) throw new Error("must be a JSON " + kind);
  return value;
}

function formError(form, field, message) {
  const slot = form.querySelector('.field-error[data-field="' + CSS.escape(String(field)) + '"]') || form.querySelector('.field-error[data-field="body"]');
  slot.textContent = message;
  announce("Not saved: " + message);
}

async function saveTask(event) {
  event.preventDefault();
  const form = event.target, f = form.elements;
  form.querySelectorAll(".field-error").forEach((p) => { p.textContent = ""; });
  const data = { name: f.name.value, task: f.task.value, catch_up: f.catch_up.value };
  for (const [field, kind] of [["args", "array"], ["kwargs", "object"]]) {
    try { data[field] = jsonField(f[field].value, kind); }
    catch (e) { formError(form, field, field + ": " + (e instanceof SyntaxError ? "is not valid JSON: " : "") + e.message); return; }
  }
  if (f.kind.value === "crontab") { data.crontab = f.crontab.value; data.interval_seconds = null; }
  else { data.interval_seconds = f.interval_seconds.value === "" ? null : Number(f.interval_seconds.value); }
  const editing = f.id.value !== "";
  const r = await request(editing ? "PUT" : "POST", editing ? "/api/tasks/" + f.id.value : "/api/tasks", data);
  if (!r.ok) { formError(form, r.data.field || "body", r.data.message); return; }
  $("task-dialog").close();
  showOutcome((editing ? "Saved " : "Created ") + r.data.name + ". Beat picks the change up automatically.", true);
  await refreshTasks();
  if (editing) $("restart-dialog").showModal();
}

async function restartBeat() {
  const r = await request("POST", "/restart_celery_beat");
  $("restart-dialog").close();
  if (r.data.success) {
    alert("✅ Celery Beat restart signal sent successfully!");
    showOutcome("Celery Beat restarted (PID " + r.data.new_pids.join(", ") + ")", true);
  } else if (r.data.not_running) {
    if (confirm("⚠️ Celery Beat is not currently running.\n\nWould you like to see instructions on how to start it?")) {
      alert("To start Celery Beat, run this command:\n\n" + START_COMMAND +
            "\n\nAfter starting, your schedule changes will take effect automatically.");
    }
    showOutcome(r.data.message, false);
  } else {
    showOutcome("Restart failed: " + r.data.message, false);
  }
  await refreshStatus();
  document.dispatchEvent(new Event("panel:processes-changed"));
}

// ---- toolbar --------------------------------------------------------------------------------
async function toolbarAction(name) {
  const [question, url] = TOOLBAR[name];
  if (!confirm(question)) return;
  const button = document.querySelector('[data-action="' + name + '"]');
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  const watch = startWatching(name);
  try {
    const r = await request("POST", url);
    stopWatching(watch);
    const hosts = r.data.hosts || [];  // Stop / Start Celery on every host of SUPERVISORS too: a line per host
    const lines = hosts.map((h) => (h.ok ? "✓ " : "✕ ") + h.host + ": " + h.message);
    showOutcome([r.data.message || ("Failed: HTTP " + r.status), ...lines].join("\n"),
                r.ok && r.data.status !== "error" && hosts.every((h) => h.ok));
  } finally {
    stopWatching(watch);
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
  await refreshAll();
  document.dispatchEvent(new Event("panel:processes-changed"));  // the health card and history follow
  if (shownLog) await showLog(shownLog);
}

// A start or stop takes seconds (a stop waits for running tasks): say so at once, then follow the server's progress.
function startWatching(name) {
  const action = { "stop-celery": "stopping", "start-celery": "starting" }[name];
  if (!action) return null;
  busyAction = action;
  beatStopped = false;
  showOutcome(action === "stopping" ? "Stopping…" : "Starting…", null);
  renderProcesses({ progress: null });
  setBadge("beat-badge", BUSY_WORDS[action], "yellow", "");
  return setInterval(refreshStatus, BUSY_POLL_MS);
}

function stopWatching(watch) {
  if (watch === null) return;
  clearInterval(watch);
  busyAction = null;
}

// ---- logs -----------------------------------------------------------------------------------
async function showLog(program) {
  shownLog = program;
  try {
    const data = await getJSON("/api/logs/" + program + "?lines=80");
    $("log-view").hidden = false;
    $("log-path").textContent = data.path + (data.exists ? "" : " (no log yet)");
    const pre = $("log-lines");
    pre.textContent = data.lines.join("\n") || "(empty)";
    pre.scrollTop = pre.scrollHeight;  // the newest lines are the ones that explain a failed start
  } catch (e) {
    showOutcome("Could not read the " + program + " log: " + e.message, false);
  }
}

// ---- polling --------------------------------------------------------------------------------
async function refreshAll() {
  if (polling) return;  // polls never overlap
  polling = true;
  try {
    await Promise.all([refreshStatus(), refreshTasks()]);
    const now = new Date().toISOString();
    $("last-updated").replaceChildren(panelTime.element(now));
  } finally {
    polling = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("beat-badge").addEventListener("click", showStartInstructions);
  document.querySelectorAll("[data-action]").forEach((b) =>
    b.addEventListener("click", () => toolbarAction(b.dataset.action)));
  document.querySelectorAll("[data-log]").forEach((b) => b.addEventListener("click", () => showLog(b.dataset.log)));
  $("log-refresh").addEventListener("click", () => showLog(shownLog));
  const newTask = $("new-task");
  if (newTask) newTask.addEventListener("click", () => openTaskForm(null));
  $("task-form").addEventListener("submit", saveTask);
  $("task-cancel").addEventListener("click", () => $("task-dialog").close());
  $("restart-close").addEventListener("click", () => $("restart-dialog").close());
  $("restart-now").addEventListener("click", restartBeat);
  refreshAll();
  panelPoll.add(refreshAll);  // every 30 s unless the user chose another pace (or paused) with #poll-rate
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refreshAll(); });
});
