// The quarantine card of the workers page: messages a worker died on, out of their queue; read, delete, requeue.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const canControl = () => $("page-data").dataset.canControl === "true";
  const path = (id) => "/api/quarantine/" + encodeURIComponent(id);

  function node(tag, text, cls) {
    const n = document.createElement(tag);
    if (text !== undefined && text !== null) n.textContent = text;
    if (cls) n.className = cls;
    return n;
  }

  function button(label, aria, cls, action) {
    const b = node("button", label, cls);
    b.type = "button";
    b.setAttribute("aria-label", aria);
    b.addEventListener("click", action);
    return b;
  }

  function say(text, ok) {
    const out = $("outcome");
    out.hidden = false;
    out.textContent = text;
    out.className = "outcome " + (ok ? "ok" : "bad");
    $("live").textContent = text;
  }

  async function read(id) {
    const r = await request("GET", path(id));
    if (!r.ok) { say(r.data.message, false); return; }
    const facts = $("quarantine-facts");
    facts.replaceChildren();
    for (const [term, value] of [["Task", r.data.task_name], ["Message", r.data.celery_task_id],
      ["Queue", r.data.queue], ["Arguments", r.data.args], ["Keyword arguments", r.data.kwargs],
      ["Retries", r.data.headers.retries ?? 0], ["ETA", r.data.headers.eta || "—"],
      ["Size", r.data.size + " bytes"], ["Why", r.data.evidence]]) {
      facts.appendChild(node("dt", term));
      facts.appendChild(node("dd", String(value), "mono"));
    }
    $("quarantine-detail-title").textContent = "Message " + r.data.celery_task_id;
    $("quarantine-detail").hidden = false;
  }

  async function act(id, task, verb) {
    const question = verb === "requeue"
      ? "Put message " + id + " (" + task + ") back in its queue? A worker will take it again."
      : "Delete message " + id + " (" + task + ") for good?";
    if (!confirm(question)) return;
    const r = verb === "requeue" ? await request("POST", path(id) + "/requeue") : await request("DELETE", path(id));
    say(r.data.message, r.ok);
    $("quarantine-detail").hidden = true;
    refresh();
  }

  function render(list) {
    const body = $("quarantine-body");
    body.replaceChildren();
    if (!list.length) { body.insertRow().appendChild(node("td", "Nothing in quarantine.")).colSpan = 7; return; }
    for (const m of list) {
      const row = body.insertRow();
      row.dataset.message = m.celery_task_id;
      for (const [text, cls] of [[m.task_name, "mono"], [m.celery_task_id, "mono"], [m.queue, "mono"],
        [String(m.deaths)], [m.evidence]]) {
        row.appendChild(node("td", text, cls));
      }
      row.appendChild(node("td", "")).appendChild(panelTime.element(m.quarantined_at));
      const actions = row.appendChild(node("td", "", "actions"));
      actions.appendChild(button("Read", "Read message " + m.celery_task_id, "", () => read(m.celery_task_id)));
      for (const [label, verb, cls] of [["Requeue", "requeue", ""], ["Delete", "delete", "danger"]]) {
        const b = button(label, label + " message " + m.celery_task_id, cls, () => act(m.celery_task_id, m.task_name, verb));
        b.disabled = !canControl();
        actions.appendChild(b);
      }
    }
  }

  async function refresh() {
    const r = await request("GET", "/api/quarantine");
    if (r.ok) render(r.data.messages);
    else { $("quarantine-body").replaceChildren(); $("quarantine-body").insertRow().appendChild(node("td", "❌ " + r.data.message)).colSpan = 7; }
  }

  document.addEventListener("DOMContentLoaded", () => {
    refresh();
    panelPoll.add(refresh);  // the page's pace (#poll-rate: 5 s unless the user chose another)
  });
})();
