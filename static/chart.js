// Succeeded and failed runs per minute over the last hour: our own small SVG bar chart (no library, no CDN).
// Numbers are also given as text (a summary line and a table for screen readers): colour is never the only signal.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const W = 720, H = 180, PAD = { left: 36, right: 8, top: 10, bottom: 24 };

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function node(tag, cls, text) {  // an HTML element; text only ever as textContent
    const made = document.createElement(tag);
    if (cls) made.className = cls;
    if (text !== undefined) made.textContent = text;
    return made;
  }

  function niceMax(n) {
    if (n <= 5) return 5;
    const step = Math.pow(10, Math.floor(Math.log10(n)));
    return Math.ceil(n / step) * step;
  }

  function draw(svg, minutes) {
    svg.replaceChildren();
    const max = niceMax(Math.max(0, ...minutes.map((m) => m.succeeded + m.failed)));
    const plotW = W - PAD.left - PAD.right, plotH = H - PAD.top - PAD.bottom;
    const barW = plotW / minutes.length;
    const y = (v) => PAD.top + plotH - (v / max) * plotH;
    for (const tick of [0, max / 2, max]) {
      svg.append(el("line", { x1: PAD.left, x2: W - PAD.right, y1: y(tick), y2: y(tick), class: "grid-line" }));
      svg.append(el("text", { x: PAD.left - 6, y: y(tick) + 4, "text-anchor": "end", class: "axis" }, String(tick)));
    }
    minutes.forEach((m, i) => {
      const x = PAD.left + i * barW + 1;
      const okTop = y(m.succeeded);
      const title = `${m.minute.slice(11, 16)} UTC: ${m.succeeded} succeeded, ${m.failed} failed`;
      const group = el("g", {});
      group.append(el("title", {}, title));
      if (m.succeeded) group.append(el("rect", { x, y: okTop, width: barW - 2, height: y(0) - okTop, class: "bar-ok" }));
      if (m.failed) {
        const top = y(m.succeeded + m.failed);
        group.append(el("rect", { x, y: top, width: barW - 2, height: okTop - top, class: "bar-failed" }));
      }
      svg.append(group);
      const last = i === minutes.length - 1;
      if (i % 10 === 0 || last) {  // the last label ends at the edge instead of running off it
        svg.append(el("text", { x: last ? W - PAD.right : x + barW / 2, y: H - 6,
                                "text-anchor": last ? "end" : "middle", class: "axis" }, m.minute.slice(11, 16)));
      }
    });
  }

  function describe(section, minutes) {
    const ok = minutes.reduce((n, m) => n + m.succeeded, 0);
    const failed = minutes.reduce((n, m) => n + m.failed, 0);
    section.querySelector(".chart-summary").textContent =
      `Last hour: ${ok} succeeded, ${failed} failed (times in UTC).`;
    const body = section.querySelector("tbody");
    body.replaceChildren(...minutes.filter((m) => m.succeeded || m.failed).map((m) => {
      const row = document.createElement("tr");
      for (const value of [m.minute.slice(11, 16), m.succeeded, m.failed]) {
        const cell = document.createElement("td");
        cell.textContent = value;
        row.append(cell);
      }
      return row;
    }));
  }

  function build(section) {
    section.replaceChildren();
    const title = node("h2", "", "Runs per minute, last hour");
    title.id = "runs-chart-title";
    const legend = node("p", "chart-legend");
    legend.append(node("span", "key key-ok"), " ✓ succeeded ", node("span", "key key-failed"), " ✕ failed");
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": "runs-chart-title",
                            class: "runs-chart" });
    const summary = node("p", "chart-summary");
    summary.setAttribute("aria-live", "polite");
    const table = node("table", "visually-hidden");
    const head = node("tr");
    head.append(...["Minute (UTC)", "Succeeded", "Failed"].map((text) => node("th", "", text)));
    const thead = node("thead");
    thead.append(head);
    table.append(node("caption", "", "Runs per minute"), thead, node("tbody"));
    section.classList.add("card");
    section.setAttribute("aria-labelledby", "runs-chart-title");
    section.append(title, legend, svg, summary, table);
    return svg;
  }

  async function refresh(section, svg) {
    if (document.hidden || section.dataset.loading === "1") return;
    section.dataset.loading = "1";
    try {
      const resp = await fetch("/api/runs/per-minute", { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
      const minutes = (await resp.json()).minutes;
      draw(svg, minutes);
      describe(section, minutes);
    } catch (err) {
      section.querySelector(".chart-summary").textContent = `Could not load the chart: ${err.message}`;
    } finally {
      section.dataset.loading = "0";
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const section = document.getElementById("runs-chart");
    if (!section) return;
    const svg = build(section);
    refresh(section, svg);
    panelPoll.add(() => refresh(section, svg));  // the page's pace, as chosen in #poll-rate (paused: none)
    document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(section, svg); });
  });
})();
