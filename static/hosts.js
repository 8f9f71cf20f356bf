// The dashboard's host cards: each host's own Supervisor (SUPERVISORS), its worker and Beat with Supervisor's states,
// Start / Stop / Restart per program, and the Celery nodes seen on that host. Drawn from the status poll of panel.js
// (its "celery-status" event); after a button, from GET /api/hosts at once. Text only through textContent.
"use strict";

(function () {
  const STATE_LOOK = {  // Supervisor's states: the badge colour, and an icon with the word so colour is never alone
    RUNNING: ["green", "✓"], STARTING: ["yellow", "…"], STOPPING: ["yellow", "…"], BACKOFF: ["orange", "↻"],
    STOPPED: ["gray", "■"], EXITED: ["red", "✕"], FATAL: ["red", "✕"], UNKNOWN: ["red", "?"],
  };
  const ACTS = [["start", "Start"], ["stop", "Stop"], ["restart", "Restart"]];
  const DOING = { start: "Starting", stop: "Stopping", restart: "Restarting" };
  const QUESTIONS = {
    stop: (p, host) => `Stop ${p.name} (${p.program}) on ${host}? Supervisor will not start it again; running tasks are cut short.`,
    restart: (p, host) => `Restart ${p.name} (${p.program}) on ${host}? Running tasks are cut short.`,
  };
  const pending = new Set();  // "host/program" while its action runs: its buttons stay disabled across redraws
  const seen = new Map();  // "host/program" -> state last drawn, to announce a change
  let lastHosts = null;
  const $ = (id) => document.getElementById(id);
  const canControl = () => $("page-data").dataset.canControl === "true";

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function uptimeWords(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const s = Math.max(0, Math.round(seconds));
    if (s < 90) return `${s} s`;
    if (s < 5400) return `${Math.round(s / 60)} min`;
    if (s < 172800) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
    return `${Math.floor(s / 86400)} d ${Math.round((s % 86400) / 3600)} h`;
  }

  function stateBadge(state) {
    const [colour, icon] = STATE_LOOK[state] || ["red", "?"];
    return el("span", `badge badge-${colour} state`, `${icon} ${state}`);
  }

  function actButton(host, p, act, label) {
    const key = `${host}/${p.name}`;
    const b = el("button", act === "stop" ? "danger" : act === "start" ? "go" : "", label);
    b.type = "button";
    b.dataset.act = act;
    b.dataset.key = `${key}/${act}`;
    b.setAttribute("aria-label", `${label} ${p.name} on ${host}`);
    b.disabled = !canControl() || pending.has(key);
    if (pending.has(key)) b.setAttribute("aria-busy", "true");
    b.addEventListener("click", () => perform(host, p, act));
    return b;
  }

  function programRow(host, p) {
    const row = el("li", "host-program");
    row.dataset.program = p.name;
    const running = p.state === "RUNNING";
    const facts = el("span", "program-facts");  // under the name: Supervisor's name for it, its PID, its uptime
    facts.append(el("span", "mono program", p.program), " · ", el("span", "pid", p.pid ? `PID ${p.pid}` : "no PID"),
                 " · ", el("span", "uptime", running ? `up ${uptimeWords(p.uptime_s)}` : "not up"));
    const buttons = el("span", "program-actions");
    buttons.append(...ACTS.map(([act, label]) => actButton(host, p, act, label)));
    row.append(el("span", "program-name", p.name), stateBadge(p.state), buttons, facts);
    return row;
  }

  function nodesLine(nodes) {
    const line = el("p", "host-nodes");
    if (!nodes.length) { line.append(el("span", "hint", "No Celery node seen on this host yet.")); return line; }
    line.append("Celery nodes: ");
    nodes.forEach((n, i) => {
      const item = el("span", `node ${n.online ? "ok-text" : "bad-text"}`, `${n.name} ${n.online ? "● online" : "○ offline"}`);
      if (n.pid) item.title = `PID ${n.pid}`;
      line.append(...(i ? [", ", item] : [item]));
    });
    return line;
  }

  function hostCard(h) {
    const card = el("article", "host-card");
    card.dataset.host = h.name;
    const id = `host-${h.name.replace(/[^A-Za-z0-9_-]/g, "_")}-title`;
    card.setAttribute("aria-labelledby", id);
    const head = el("div", "card-head");
    const title = el("h3", "", h.name);
    title.id = id;
    head.append(title, el("span", `badge badge-${h.reachable ? "green" : "red"} reach`,
                             h.reachable ? "✓ Reachable" : "✕ Unreachable"));
    card.append(head);
    if (!h.reachable) { card.append(el("p", "bad-text host-error", h.error || "supervisord did not answer")); return card; }
    if (!h.programs.length) card.append(el("p", "hint", "No worker or Beat program of SUPERVISOR_PROGRAMS on this host."));
    else {
      const list = el("ul", "host-programs");
      list.append(...h.programs.map((p) => programRow(h.name, p)));
      card.append(list);
    }
    if (Array.isArray(h.nodes)) card.append(nodesLine(h.nodes));
    return card;
  }

  function announceChanges(hosts) {
    for (const h of hosts) {
      for (const p of h.programs) {
        const key = `${h.name}/${p.name}`;
        if (seen.has(key) && seen.get(key) !== p.state) announce(`${p.name} on ${h.name}: ${p.state}`);
        seen.set(key, p.state);
      }
    }
  }

  function render(hosts) {
    if (!Array.isArray(hosts)) return;  // a status without the hosts' list leaves the cards as they are
    lastHosts = hosts;
    const focused = $("hosts-list").contains(document.activeElement) ? document.activeElement.dataset.key : undefined;
    $("hosts-card").hidden = hosts.length === 0;
    $("hosts-list").replaceChildren(...hosts.map(hostCard));
    announceChanges(hosts);
    if (focused) {  // a redraw under the keyboard's focus puts it back on the same button
      const again = $("hosts-list").querySelector(`[data-key="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
  }

  async function refresh() {
    const r = await request("GET", "/api/hosts");
    if (r.ok) render(r.data.hosts);
  }

  async function perform(host, p, act) {
    const ask = QUESTIONS[act];
    if (ask && !window.confirm(ask(p, host))) return;
    const key = `${host}/${p.name}`;
    pending.add(key);
    if (lastHosts) render(lastHosts);
    showOutcome(`${DOING[act]} ${p.name} on ${host}…`, null);
    try {
      const r = await request("POST", `/api/hosts/${encodeURIComponent(host)}/${p.name}/${act}`);
      showOutcome(r.data.message || `Failed: HTTP ${r.status}`, r.ok && r.data.status !== "error");
    } catch (err) {
      showOutcome(`${act} of ${p.name} on ${host} failed: ${err.message}`, false);
    } finally {
      pending.delete(key);
    }
    await refresh();
  }

  document.addEventListener("celery-status", (event) => render(event.detail.hosts));
})();
