// The dashboard: status badges polled every 30 s (seed 002), never overlapping, paused while hidden.
"use strict";

const POLL_MS = 30000;
const START_COMMAND = "./start_celery_beat.sh";
let polling = false;
let beatStopped = false;

function setBadge(id, text, colour, title) {
  const el = document.getElementById(id);
  if (!el) return;
  const changed = el.textContent !== text;
  el.textContent = text;
  el.className = "badge badge-" + colour + (id === "beat-badge" && beatStopped ? " clickable" : "");
  el.title = title || "";
  if (changed) document.getElementById("live").textContent = id.replace("-badge", "") + ": " + text;
}

function showStartInstructions() {
  if (!beatStopped) return;
  alert("To start Celery Beat, run this command:\n\n" + START_COMMAND +
        "\n\nAfter starting, your schedule changes will take effect automatically.");
}

function renderBeat(data) {
  beatStopped = !data.running;
  if (data.running) {
    const text = data.count > 1 ? "✓ Active (" + data.count + " processes)" : "✓ Active";
    setBadge("beat-badge", text, "green", "PIDs: " + data.pids.join(", "));
  } else {
    setBadge("beat-badge", "⚠️ Stopped", "red", "Celery Beat is not running: click for instructions");
    console.warn("Celery Beat is not running. Start it with " + START_COMMAND);
  }
}

function renderProcesses(data) {
  setBadge("overall-badge", data.running ? "● Running" : "■ Stopped", data.running ? "green" : "red");
  const w = data.worker;
  setBadge("worker-badge", w.active ? "✓ Active" : "○ Inactive", w.active ? "green" : "gray",
           w.active ? "PIDs: " + w.pids.join(", ") + " (" + w.pool_processes + " pool processes)" : "");
}

async function getJSON(url) {
  const resp = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  if (!resp.ok) throw new Error(url + " answered " + resp.status);
  return resp.json();
}

async function refreshStatus() {
  if (polling) return;  // polls never overlap
  polling = true;
  try {
    const [beat, procs] = await Promise.allSettled([getJSON("/celery_status"), getJSON("/scheduler/celery-status/")]);
    if (beat.status === "fulfilled") renderBeat(beat.value);
    else { beatStopped = false; setBadge("beat-badge", "❌ Error", "red", "Cannot check status: " + beat.reason); }
    if (procs.status === "fulfilled") renderProcesses(procs.value);
    else setBadge("overall-badge", "❌ Error", "red", String(procs.reason));
    document.getElementById("last-updated").textContent = new Date().toLocaleTimeString();
  } finally {
    polling = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("beat-badge").addEventListener("click", showStartInstructions);
  refreshStatus();
  setInterval(() => { if (!document.hidden) refreshStatus(); }, POLL_MS);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refreshStatus(); });
});
