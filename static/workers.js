// The workers and queues page. Plain JavaScript; status is a word and an icon as well as a colour.
"use strict";

const CONFIRM = {
  shutdown: (w) => "Shut down " + w + "? It finishes its running tasks, then exits; only a restart on its host brings it back.",
  purge: (q, n) => "Purge queue " + q + "? Its " + n + " waiting message(s) are deleted for good.",
};
let selected = null;   // the worker whose detail is shown
let selectedOnline = null;
let polling = false;
let taskTypes = [];
const $ = (id) => document.getElementById(id);
const canControl = () => $("page-data").dataset.canControl === "true";

function announce(text) { $("live").textContent = text; }

function showOutcome(el, text, ok) {
  el.hidden = false;
  el.textContent = text;
  el.className = "outcome " + (ok ? "ok" : "bad");
  announce(text);
}

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

function cell(row, text, cls) { return row.appendChild(el("td", text, cls)); }

function badge(online) {
  return online ? el("span", "● Online", "badge badge-green") : el("span", "○ Offline", "badge badge-red");
}

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  return seconds < 60 ? seconds.toFixed(1) + " s ago" : Math.round(seconds / 60) + " min ago";
}

// Two counters from two sources, so they need not add up: each says what it counts.
const PROCESSED_MEANS = "the worker's own count of tasks it started since its process started";
const ENDED_MEANS = "ends the panel saw in this worker process's task events, since it first saw the process " +
                    "(not those that ended while the panel was down)";

function count(n) { return Number(n).toLocaleString("en-US"); }

function poolText(pool) {
  if (!pool || !pool.type) return "—";
  return pool.type + " × " + pool.size + (pool.autoscaler ? " (autoscale)" : "");
}

// ---- workers ------------------------------------------------------------------------------
function renderWorkers(list) {
  const body = $("workers-body");
  body.replaceChildren();
  if (!list.length) {
    const row = body.insertRow();
    const td = cell(row, "No worker has been seen yet. Start one (Start Celery on the dashboard) and it appears within seconds.");
    td.colSpan = 10;
    return;
  }
  for (const w of list) {
    const row = body.insertRow();
    row.dataset.worker = w.name;
    if (w.name === selected) row.className = "selected";
    cell(row, w.name, "mono");
    cell(row, w.hostname);
    cell(row, "").appendChild(badge(w.online));
    cell(row, poolText(w.pool));
    cell(row, String(w.active));
    cell(row, count(w.processed)).title = PROCESSED_MEANS;
    cell(row, count(w.succeeded) + " / " + count(w.failed)).title = ENDED_MEANS;
    cell(row, ago(w.heartbeat_age_s)).title = w.last_heartbeat_at ? panelTime.absolute(w.last_heartbeat_at) : "";
    cell(row, (w.queues || []).join(", ") || "—");
    const b = el("button", "Details");
    b.type = "button";
    b.setAttribute("aria-label", "Details of " + w.name);
    b.addEventListener("click", () => showDetail(w.name));
    cell(row, "").appendChild(b);
  }
}

function liveList(target, value, describe) {
  const box = $(target);
  box.replaceChildren();
  if (value === "no reply") { box.appendChild(el("p", "⚠ no reply", "no-reply")); return; }
  if (!value || !value.length) { box.appendChild(el("p", "none", "hint")); return; }
  const ul = el("ul", null, "live-list");
  for (const item of value) ul.appendChild(el("li", describe(item), "mono"));
  box.appendChild(ul);
}

function taskLine(t) {
  const req = t.request || t;
  const when = t.eta ? " ETA " + panelTime.absolute(t.eta) : "";
  return req.name + "[" + (req.id || "").slice(0, 8) + "] " + JSON.stringify(req.args || []) + when;
}

function fact(dl, term, value) {
  dl.appendChild(el("dt", term));
  const dd = dl.appendChild(el("dd"));
  if (value instanceof Node) dd.appendChild(value); else dd.textContent = value;
}

function renderDetail(d) {
  selectedOnline = d.online;
  $("detail-title").textContent = "Worker " + d.name;
  const dl = $("detail-facts");
  dl.replaceChildren();
  const status = el("span");
  status.appendChild(badge(d.online));
  if (d.no_reply.length) status.appendChild(el("span", " ⚠ no reply from: " + d.no_reply.join(", "), "no-reply"));
  fact(dl, "Status", status);
  fact(dl, "Host / PID", d.hostname + " / " + (d.pid ?? "—"));
  fact(dl, "Pool", poolText(d.pool) + (d.pool.processes && d.pool.processes.length ? " (PIDs " + d.pool.processes.join(", ") + ")" : ""));
  fact(dl, "Processed", count(d.processed) + " — " + PROCESSED_MEANS);
  fact(dl, "Succeeded / failed", count(d.succeeded) + " / " + count(d.failed) + " — " + ENDED_MEANS);
  fact(dl, "Last heartbeat", ago(d.heartbeat_age_s) + " (every " + d.heartbeat_freq_s + " s)");
  fact(dl, "Celery", d.sw_ver + " on " + d.sw_sys);
  liveList("live-active", d.live.active, taskLine);
  liveList("live-reserved", d.live.reserved, taskLine);
  liveList("live-scheduled", d.live.scheduled, taskLine);
  liveList("live-queues", d.live.active_queues, (q) => q.name);
  liveList("live-registered", d.live.registered, (name) => name);
}

async function showDetail(name) {
  selected = name;
  const section = $("worker-detail");
  section.hidden = false;
  $("detail-title").textContent = "Worker " + name + " (asking...)";
  const r = await request("GET", "/api/workers/" + encodeURIComponent(name));
  if (!r.ok) { showOutcome($("control-reply"), "Could not read " + name + ": " + r.data.message, false); return; }
  renderDetail(r.data);
  document.querySelectorAll("#workers-body tr").forEach((tr) => tr.classList.toggle("selected", tr.dataset.worker === name));
}

function controlBody(action) {
  if (action === "pool-grow" || action === "pool-shrink") return { n: Number($("pool-n").value) };
  if (action === "autoscale") return { max: Number($("autoscale-max").value), min: Number($("autoscale-min").value) };
  return undefined;
}

async function control(action) {
  if (!selected) return;
  if (action === "shutdown" && !confirm(CONFIRM.shutdown(selected))) return;
  const r = await request("POST", "/api/workers/" + encodeURIComponent(selected) + "/" + action, controlBody(action));
  const said = typeof r.data.reply === "object" ? JSON.stringify(r.data.reply) : r.data.reply;
  showOutcome($("control-reply"), r.data.message + (said ? " — the worker answered: " + said : ""), r.ok);
  setTimeout(() => { refresh(); if (action !== "shutdown") showDetail(selected); }, 600);
}

// ---- registered tasks ---------------------------------------------------------------------
function limitsText(t) {
  const parts = [];
  if (t.rate_limit) parts.push("rate " + t.rate_limit);
  if (t.soft_time_limit) parts.push("soft " + t.soft_time_limit + " s");
  if (t.time_limit) parts.push("hard " + t.time_limit + " s");
  return parts.join(", ") || "none";
}

function renderTypes(tasks) {
  taskTypes = tasks;
  const body = $("types-body");
  body.replaceChildren();
  const select = $("task-select");
  const keep = select.value;
  select.replaceChildren();
  for (const t of tasks) {
    const row = body.insertRow();
    row.dataset.task = t.name;
    cell(row, t.name, "mono");
    cell(row, t.signature || "(not importable in the panel)", "mono");
    cell(row, t.doc || "—");
    cell(row, t.workers.join(", ") || "—");
    cell(row, limitsText(t));
    const b = el("button", "Use");
    b.type = "button";
    b.setAttribute("aria-label", "Use " + t.name + " in the forms below");
    b.addEventListener("click", () => { select.value = t.name; describeTask(); $("send-args").focus(); });
    cell(row, "").appendChild(b);
    select.appendChild(new Option(t.name, t.name));
  }
  if (keep) select.value = keep;
  describeTask();
}

function describeTask() {
  const t = taskTypes.find((x) => x.name === $("task-select").value);
  $("task-signature").textContent = t ? t.name + (t.signature || "") + (t.doc ? " — " + t.doc : "") : "";
}

function clearErrors(form) { form.querySelectorAll(".field-error").forEach((p) => { p.textContent = ""; }); }

function fieldError(form, field, message) {
  const p = form.querySelector('.field-error[data-field="' + CSS.escape(String(field)) + '"]');
  if (p) p.textContent = message; else showOutcome($("outcome"), message, false);
}

function parseJSON(form, field, text, kind) {
  try {
    const value = JSON.parse(text.trim() || (kind === "array" ? "[]" : "{}"));
    if (kind === "array" ? Array.isArray(value) : value && typeof value === "object" && !Array.isArray(value)) return value;
    fieldError(form, field, "must be a JSON " + kind);
  } catch (e) { fieldError(form, field, "is not valid JSON: " + e.message); }
  return undefined;
}

async function submitTaskForm(form, path, payload, success) {
  const name = $("task-select").value;
  const r = await request("POST", "/api/registered-tasks/" + encodeURIComponent(name) + "/" + path, payload);
  if (r.status === 400 && r.data.field) { fieldError(form, r.data.field, r.data.message); return; }
  showOutcome($("outcome"), r.ok ? success(r.data) : r.data.message + replyText(r.data), r.ok);
  loadTypes();
}

function replyText(data) {
  if (!data.replies) return "";
  return " (" + Object.entries(data.replies).map(([w, a]) => w + ": " + (a.ok || a.error || a)).join("; ") + ")";
}

async function sendTask(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  const args = parseJSON(form, "args", $("send-args").value, "array");
  const kwargs = parseJSON(form, "kwargs", $("send-kwargs").value, "object");
  if (args === undefined || kwargs === undefined) return;
  const payload = { args, kwargs };
  if ($("send-queue").value.trim()) payload.queue = $("send-queue").value.trim();
  const later = (id) => $(id).value.trim();
  if (later("send-countdown")) payload.countdown = Number(later("send-countdown"));
  if (later("send-eta")) payload.eta = later("send-eta");
  if (later("send-expires")) payload.expires = /^\d+(\.\d+)?$/.test(later("send-expires")) ? Number(later("send-expires")) : later("send-expires");
  if (later("send-priority")) payload.priority = Number(later("send-priority"));
  await submitTaskForm(form, "send", payload, (d) => d.message + " (run " + d.celery_task_id + ")");
  refresh();  // its queue's count
  if (peeking) peek(peeking);
}

async function setRate(event) {
  event.preventDefault();
  clearErrors(event.target);
  await submitTaskForm(event.target, "rate-limit", { rate_limit: $("rate-limit").value.trim() },
                       (d) => d.message + replyText(d));
}

async function setTimes(event) {
  event.preventDefault();
  clearErrors(event.target);
  const num = (id) => ($(id).value.trim() === "" ? null : Number($(id).value));
  await submitTaskForm(event.target, "time-limit", { soft: num("soft-limit"), hard: num("hard-limit") },
                       (d) => d.message + replyText(d));
}

// ---- queues -------------------------------------------------------------------------------
function queueButton(text, label, cls, action, needsControl) {
  const b = el("button", text, cls);
  b.type = "button";
  b.disabled = needsControl && !canControl();
  b.setAttribute("aria-label", label);
  b.addEventListener("click", action);
  return b;
}

function renderQueues(list) {
  const body = $("queues-body");
  body.replaceChildren();
  if (!list.length) { cell(body.insertRow(), "No queue known yet.").colSpan = 5; return; }
  for (const q of list) {
    const row = body.insertRow();
    row.dataset.queue = q.name;
    cell(row, q.name, "mono");
    cell(row, String(q.messages), "queue-count");
    cell(row, q.consumers.join(", ") || "⚠ no worker consumes it");
    cell(row, "").appendChild(q.paused ? el("span", "❚❚ Paused", "badge badge-orange") : el("span", "▶ Consuming", "badge badge-green"));
    const actions = cell(row, "", "queue-actions");
    actions.appendChild(q.paused
      ? queueButton("▶ Resume", "Resume queue " + q.name, "go", () => pauseQueue(q.name, "resume"), true)
      : queueButton("❚❚ Pause", "Pause queue " + q.name, "", () => pauseQueue(q.name, "pause"), true));
    actions.appendChild(queueButton("Peek", "Peek at the waiting messages of " + q.name, "", () => peek(q.name), false));
    actions.appendChild(queueButton("Purge", "Purge queue " + q.name, "danger", () => purge(q.name, q.messages), true));
  }
}

async function pauseQueue(name, action) {
  const r = await request("POST", "/api/queues/" + encodeURIComponent(name) + "/" + action);
  showOutcome($("outcome"), r.data.message, r.ok);
  refresh();
}

let peeking = null;  // the queue whose waiting messages are shown

async function peek(name) {
  peeking = name;
  $("peek").hidden = false;
  $("peek-title").textContent = "Waiting messages of " + name + " (reading...)";
  const r = await request("GET", "/api/queues/" + encodeURIComponent(name) + "/messages?limit=20");
  const body = $("peek-body");
  body.replaceChildren();
  if (!r.ok) { $("peek-title").textContent = "Waiting messages of " + name; cell(body.insertRow(), "❌ " + r.data.message).colSpan = 9; return; }
  const d = r.data;
  $("peek-title").textContent = "Waiting messages of " + name + (d.paused ? " (❚❚ paused)" : "") + ": the next " + d.shown + " of " + d.waiting + ", in the order they will be taken";
  if (!d.messages.length) { cell(body.insertRow(), "Nothing waits in this queue.").colSpan = 9; return; }
  for (const m of d.messages) {
    const row = body.insertRow();
    cell(row, String(m.position));
    cell(row, m.task || "—", "mono");
    cell(row, m.id || "—", "mono");
    if (m.undecodable) {  // one message peek cannot read: said in its row, the others shown as usual
      const why = cell(row, "⚠️ " + m.undecodable + " (" + m.size + " bytes)");
      why.colSpan = 2;
    } else {
      cell(row, m.args, "mono");
      cell(row, m.kwargs, "mono");
    }
    cell(row, "").appendChild(panelTime.element(m.eta));
    cell(row, "").appendChild(panelTime.element(m.expires));
    cell(row, String(m.retries));
    cell(row, m.priority === null ? "—" : String(m.priority));
  }
}

async function purge(name, count) {
  if (!confirm(CONFIRM.purge(name, count))) return;
  const r = await request("POST", "/api/queues/" + encodeURIComponent(name) + "/purge", { confirm: true });
  showOutcome($("outcome"), r.data.message, r.ok);
  refresh();
}

// ---- polling ------------------------------------------------------------------------------
async function loadTypes() {
  const r = await request("GET", "/api/registered-tasks");
  if (r.ok) renderTypes(r.data.tasks);
}

async function refresh() {
  if (polling) return;
  polling = true;
  try {
    const [w, q] = await Promise.all([request("GET", "/api/workers"), request("GET", "/api/queues")]);
    if (w.ok) {
      renderWorkers(w.data.workers);
      const shown = w.data.workers.find((x) => x.name === selected);
      if (shown && selectedOnline !== null && shown.online !== selectedOnline) showDetail(selected);
    } else showOutcome($("outcome"), "Workers: " + w.data.message, false);
    if (q.ok) renderQueues(q.data.queues);
    else {
      $("queues-body").replaceChildren();
      cell($("queues-body").insertRow(), "❌ " + q.data.message).colSpan = 5;
    }
    $("last-updated").replaceChildren(panelTime.element(new Date().toISOString()));
  } finally { polling = false; }
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-control]").forEach((b) => b.addEventListener("click", () => control(b.dataset.control)));
  $("detail-refresh").addEventListener("click", () => selected && showDetail(selected));
  $("task-select").addEventListener("change", describeTask);
  $("send-form").addEventListener("submit", sendTask);
  $("rate-form").addEventListener("submit", setRate);
  $("time-form").addEventListener("submit", setTimes);
  $("peek-refresh").addEventListener("click", () => peeking && peek(peeking));
  $("peek-close").addEventListener("click", () => { peeking = null; $("peek").hidden = true; });
  refresh();
  loadTypes();
  panelPoll.add(refresh);  // the page's pace (#poll-rate: 5 s unless the user chose another)
});
