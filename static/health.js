// The dashboard's health card, watchdog switches and restart history. Polls at the page's pace (panelPoll: 30 s
// unless the user chose another; never two at once, paused while hidden). Every state is words and an icon, not colour alone.
"use strict";

(function () {
  const DOG_LOOK = {  // Supervisor-like states of the watchdog
    RUNNING: ["ok-text", "✓ RUNNING"], STARTING: ["hint", "… STARTING"], BACKOFF: ["bad-text", "↻ BACKOFF"],
    FATAL: ["bad-text", "✕ FATAL"], EXITED: ["bad-text", "✕ EXITED"], STOPPED: ["hint", "■ STOPPED"],
  };
  let busy = false;
  const $ = (id) => document.getElementById(id);

  function say(id, text, cls) {
    const el = $(id);
    el.textContent = text;
    el.className = cls || "";
  }

  function reachable(part, name) {
    return part.ok ? [`✓ reachable (${part.latency_ms} ms)`, "ok-text"] : [`✕ ${name} unreachable: ${part.error}`, "bad-text"];
  }

  function store(part) {
    const KIND = { redis: "Redis", sqlalchemy: "SQL table (celery_taskmeta)", "django-db": "django-celery-results",
      rpc: "rpc://", other: "Celery backend" };
    const name = KIND[part.kind] || part.kind;
    if (!part.ok) return [`✕ ${name}: ${part.error}`, "bad-text"];
    const how = part.latency_ms !== null && part.latency_ms !== undefined ? ` (${part.latency_ms} ms)` : "";
    return [`${part.note ? "⚠️" : "✓"} ${name}${how}${part.note ? " — " + part.note : ""}`, part.note ? "" : "ok-text"];
  }

  function showProject(p) {  // the project's own Celery settings: each one that blinds the panel, with the line to add
    const el = $("h-project");
    const WHERE = { workers: `read from ${p.workers.join(", ")}`, report: "read by `celery report` (no worker answered)",
      panel: "the panel's own (embedded app)", unread: "not read" };
    el.textContent = "";
    el.className = p.warnings.length || p.source === "unread" ? "" : "ok-text";
    const head = document.createElement("div");
    head.textContent = `${p.warnings.length ? "⚠️" : "✓"} ${WHERE[p.source] || p.source}` + (p.error ? `: ${p.error}` : "")
      + (p.warnings.length ? "" : ", nothing hides runs from the panel");
    el.appendChild(head);
    if (!p.warnings.length) return;
    const list = document.createElement("ul");
    for (const w of p.warnings) {
      const item = document.createElement("li");
      item.textContent = `⚠️ ${w.setting}: ${w.message}`;
      if (w.line) {
        const code = document.createElement("code");
        code.textContent = w.line;
        item.append(" — add to the project: ", code);
      }
      list.appendChild(item);
    }
    el.appendChild(list);
  }

  function ago(seconds) {
    if (seconds === null || seconds === undefined) return "age unknown";
    if (seconds < 120) return `${Math.round(seconds)} s ago`;
    if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`;
    return `${Math.round(seconds / 3600)} h ago`;
  }

  function showProgram(kind, part) {
    const pids = part.pids.length ? ` (PID ${part.pids.join(", ")})` : "";
    say(`h-${kind}`, part.active ? `✓ running${pids}` : "⚠️ not running", part.active ? "ok-text" : "bad-text");
    const dog = part.watchdog;
    const box = $(`wd-${kind}`);
    if (!box) return;  // PROCESS_MANAGER=supervisor: Supervisor restarts it, no watchdog switch
    box.checked = Boolean(dog && dog.enabled);
    if (!dog || !dog.enabled) { say(`wd-${kind}-state`, "watchdog off", "hint"); return; }
    const [cls, word] = DOG_LOOK[dog.state] || ["hint", dog.state];
    const tries = dog.failures ? `, ${dog.failures} quick failure(s)` : "";
    say(`wd-${kind}-state`, `${word}${tries}${dog.reason ? " — " + dog.reason : ""}`, cls);
  }

  function showHealth(h) {
    const badge = $("health-badge");
    const look = { ok: ["green", "✓ Healthy"], degraded: ["yellow", "⚠️ Degraded"], down: ["red", "❌ Down"] }[h.status];
    badge.textContent = look[1];
    badge.className = "badge badge-" + look[0];
    const paused = h.app.schedules_paused ? " (paused: Beat was stopped here)" : "";
    say("h-app", h.app.embedded ? "the embedded demo (celery_app)"
      : `${h.app.name} in ${h.app.workdir}; the panel sends its own schedules${paused}`, "");
    say("h-broker", ...reachable(h.broker, "broker"));
    say("h-database", ...reachable(h.database, "database"));
    say("h-backend", ...store(h.backend));
    showProject(h.project);
    showProgram("worker", h.worker);
    showProgram("beat", h.beat);
    const d = h.last_beat_dispatch;
    say("h-dispatch", d ? `${d.task}, ${ago(d.age_s)}` : "nothing sent by Beat yet", d ? "" : "hint");
    const o = h.oldest_queued;
    if (!o) say("h-oldest", "no message waiting", "hint");
    else if (o.error) say("h-oldest", `could not read the queues: ${o.error}`, "bad-text");
    else say("h-oldest", `${o.task || "?"} in ${o.queue}, ${ago(o.age_s)} (${o.task_id})`, "");
  }

  function cell(text) {
    const td = document.createElement("td");
    if (text instanceof Node) td.appendChild(text);
    else td.textContent = text;
    return td;
  }

  function exitWords(code) {
    if (code === null || code === undefined) return "—";
    return code < 0 ? `signal ${-code}` : `status ${code}`;
  }

  function showHistory(events) {
    const body = $("history-body");
    if (!events.length) {
      const row = document.createElement("tr");
      row.append(cell("Nothing yet."));
      row.firstChild.colSpan = 9;
      body.replaceChildren(row);
      return;
    }
    body.replaceChildren(...events.map((e) => {
      const row = document.createElement("tr");
      const outcome = e.outcome === "ok" ? "✓ ok" : "✕ " + e.outcome;
      row.append(cell(panelTime.element(e.at)), cell(e.host ? `${e.program} on ${e.host}` : e.program), cell(e.action), cell(outcome),
                 cell(e.pids.join(", ") || "—"), cell(exitWords(e.exit_status)), cell(e.cause || "—"),
                 cell(e.actor || "—"), cell(e.message));
      return row;
    }));
  }

  async function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const [h, ev] = await Promise.all([request("GET", "/api/health"), request("GET", "/api/process-events?limit=15")]);
      if (h.ok) showHealth(h.data); else say("health-badge", "❌ Error", "badge badge-red");
      if (ev.ok) showHistory(ev.data.events);
    } catch (err) {
      say("health-badge", "❌ Error", "badge badge-red");
    } finally {
      busy = false;
    }
  }

  async function toggle(event) {
    const box = event.target;
    const program = box.dataset.program;
    const on = box.checked;
    const question = on ? `Keep ${program} running? The watchdog starts it again whenever it stops without a stop from the panel.`
                        : `Switch the watchdog for ${program} off? A crash will then leave it stopped.`;
    if (!window.confirm(question)) { box.checked = !on; return; }
    const r = await request("POST", `/api/watchdog/${program}`, { enabled: on });
    if (!r.ok) { box.checked = !on; window.alert(r.data.message || "failed"); }
    refresh();
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (!$("health-card")) return;
    document.querySelectorAll(".watchdog-switch input").forEach((box) => box.addEventListener("change", toggle));
    refresh();
    panelPoll.add(refresh);
    document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
    document.addEventListener("panel:processes-changed", refresh);  // a toolbar action: show its effect now
  });
})();
