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
