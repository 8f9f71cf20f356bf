// The one way the pages call the JSON API: same-origin session, the CSRF header on state changes,
// and an answer that is always {ok, status, data} (data.message says what went wrong).
"use strict";

async function request(method, url, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRFToken"] = document.querySelector('meta[name="csrf-token"]').content;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(url, { method, headers, credentials: "same-origin",
                                  body: body === undefined ? undefined : JSON.stringify(body) });
  let data = {};
  try { data = await resp.json(); } catch (e) { data = { message: resp.status + " " + resp.statusText }; }
  return { ok: resp.ok, status: resp.status, data };
}

// ---- times: one way on every page ------------------------------------------------------------
// Visible: relative ("3 min ago", "in 2 h"); on hover (title): the absolute time in UTC, to the second, the zone
// named. Stored times are UTC; a value is rounded to the nearest second, so a 03:30 cron never shows 03:29:59.
const panelTime = {
  parse(iso) {
    if (!iso) return null;
    const text = /[zZ]|[+-]\d\d:?\d\d$/.test(iso) ? iso : iso + "Z";  // a naive stored time is UTC
    const ms = Date.parse(text);
    return Number.isNaN(ms) ? null : Math.round(ms / 1000) * 1000;
  },
  absolute(iso) {
    const ms = panelTime.parse(iso);
    return ms === null ? "—" : new Date(ms).toISOString().slice(0, 19).replace("T", " ") + " UTC";
  },
  relative(iso, now) {
    const ms = panelTime.parse(iso);
    if (ms === null) return "—";
    const s = Math.round((ms - (now || Date.now())) / 1000), a = Math.abs(s);
    if (a < 5) return "just now";
    const [n, unit] = a < 90 ? [a, "s"] : a < 5400 ? [Math.round(a / 60), "min"]
      : a < 129600 ? [Math.round(a / 3600), "h"] : [Math.round(a / 86400), "d"];
    return s > 0 ? `in ${n} ${unit}` : `${n} ${unit} ago`;
  },
  // A <time> element: relative text, absolute title; panelTime.refresh keeps the text current.
  element(iso) {
    if (!iso) return document.createTextNode("—");
    const el = document.createElement("time");
    el.dateTime = iso;
    panelTime.show(el);
    return el;
  },
  show(el) {
    const iso = el.getAttribute("datetime");
    if (panelTime.parse(iso) === null) return;
    el.textContent = panelTime.relative(iso);
    el.title = panelTime.absolute(iso);
  },
  refresh(root) { (root || document).querySelectorAll("time[datetime]").forEach(panelTime.show); },
};

// ---- live polling under the user's control (every 30 s by default), remembered per browser ------------
const panelPoll = (() => {
  const KEY = "panel.poll-ms", DEFAULT_MS = 30000, CHOICES = [30000, 10000, 5000, 2000, 0];  // 0: paused
  const jobs = [];
  let timer = null;
  function every() {
    let stored = null;
    try { stored = localStorage.getItem(KEY); } catch (e) { /* storage off: the default */ }
    const ms = Number(stored);
    if (stored !== null && CHOICES.includes(ms)) return ms;
    const own = Number(document.getElementById("poll-rate")?.dataset.default);  // a page's pace before any choice
    return CHOICES.includes(own) ? own : DEFAULT_MS;
  }
  function run() { if (!document.hidden) jobs.forEach((job) => job()); }
  function schedule() {
    clearTimeout(timer);
    const ms = every();
    if (ms > 0) timer = setTimeout(() => { run(); schedule(); }, ms);
  }
  function set(ms) {
    try { localStorage.setItem(KEY, String(ms)); } catch (e) { /* kept for this page only */ }
    schedule();
    if (ms > 0) run();  // a faster pace shows its first refresh at once
  }
  function add(job) { jobs.push(job); if (!timer) schedule(); }
  return { add, set, every, CHOICES };
})();

// ---- a table or card wider than the screen scrolls inside itself: keyboard users can scroll it too ----------
function panelScrollers() {
  const seen = new ResizeObserver((entries) => entries.forEach(({ target }) => {
    if (target.scrollWidth > target.clientWidth + 1) target.tabIndex = 0;
    else target.removeAttribute("tabindex");
  }));
  document.querySelectorAll("table.grid, main > .card").forEach((el) => seen.observe(el));
}

document.addEventListener("DOMContentLoaded", () => {
  panelTime.refresh();
  panelScrollers();
  const rate = document.getElementById("poll-rate");
  if (rate) {
    rate.value = String(panelPoll.every());
    rate.addEventListener("change", () => panelPoll.set(Number(rate.value)));
  }
  setInterval(() => panelTime.refresh(), 15000);  // "3 min ago" stays true between polls
});
