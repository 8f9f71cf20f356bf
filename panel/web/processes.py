"""JSON routes: the seed endpoints for status and process control."""
import logging

from flask import Blueprint, current_app, g, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from panel.host import watchdog
from panel.host.processes import BEAT, WORKER
from panel.host.supervisor import tail
from panel.runlog import runs
from panel.security import audit
from panel.security.auth import admin, operator, public, viewer
from panel.web.errors import error_response
from panel.web.request_args import ID_MAX, whole_arg

api = Blueprint("api", __name__)
log = logging.getLogger("panel.control")

START_COMMAND = "./start_celery_beat.sh"
STOPPED_REASON = "Celery was stopped from the panel while this task was running"


def supervisor():
    return current_app.extensions["supervisor"]


@api.get("/healthz")
@public
def healthz():
    return jsonify({"status": "ok"})


@api.get("/celery_status")
@viewer
def celery_status():
    """Seed 002: is Beat running, and with which PIDs."""
    beat = supervisor().status()[BEAT]
    return jsonify({"running": beat["active"], "pids": beat["pids"], "count": beat["count"]})


@api.post("/restart_celery_beat")
@operator
def restart_celery_beat():
    """Seed 002: restart a running Beat; a Beat that is not running is a 200 with instructions."""
    outcome = supervisor().restart_beat()
    if outcome is None:
        log.info("restart of Celery Beat asked, but Beat is not running")
        return jsonify({"success": False, "not_running": True,
                        "message": "Celery Beat is not currently running",
                        "instructions": f"Please start Celery Beat manually using: {START_COMMAND}",
                        "manual_start_command": START_COMMAND})
    old, result = outcome
    log.info("restarted Celery Beat: old %s new %s ok=%s", old, result.pids, result.ok)
    if not result.ok:
        return error_response(500, f"Celery Beat was stopped but did not start again: {result.message}",
                              old_pids=old, new_pids=[], log_tail=result.log_tail)
    return jsonify({"success": True, "message": "Celery Beat restarted", "old_pids": old, "new_pids": result.pids})


@api.get("/scheduler/celery-status/")
@viewer
def scheduler_celery_status():
    """Seed 000: overall running or stopped, and the worker's and Beat's own status."""
    st = supervisor().status()
    worker, beat = st[WORKER], st[BEAT]
    running = worker["active"] and beat["active"]
    worker_pool = sum(len(p) for p in worker["pool_pids"].values())
    dogs = _watchdogs()
    return jsonify({
        "status": "running" if running else "stopped",
        "running": running,
        "worker": {"active": worker["active"], "status": "active" if worker["active"] else "inactive",
                   "pids": worker["pids"], "count": worker["count"], "pool_processes": worker_pool,
                   "pool_pids": worker["pool_pids"], "state": _state(worker, dogs.get(WORKER)),
                   "watchdog": dogs.get(WORKER)},
        "beat": {"active": beat["active"], "status": "active" if beat["active"] else "inactive",
                 "pids": beat["pids"], "count": beat["count"], "state": _state(beat, dogs.get(BEAT)),
                 "watchdog": dogs.get(BEAT)},
    })


def _watchdogs():
    """The watchdog's view per program; the process table answers even when the database does not."""
    try:
        return watchdog.view()
    except SQLAlchemyError as exc:
        log.warning("status without the watchdog's view: %s", exc)
        return {}


def _state(process, dog):
    """A watched program shows the watchdog's state (BACKOFF, FATAL...), others what this process saw."""
    return dog["state"] if dog and dog["enabled"] and not process["active"] else process["state"]


@api.post("/scheduler/stop-celery/")
@operator
def stop_celery():
    """Seed 000/001: stop worker and Beat, then make the database tell the truth."""
    killed, survivors = supervisor().stop()
    message = f"Stopped {killed[WORKER]} worker(s) and {killed[BEAT]} beat process(es)"
    try:
        tasks_n, logs_n = runs.fail_running(STOPPED_REASON)
        message += f"; marked {tasks_n} running task(s) and {logs_n} running log(s) as failed"
    except Exception as exc:  # processes are stopped whatever the database says
        log.exception("stop-celery: database update failed")
        message += f"; the database update failed: {exc}"
        return jsonify({"status": "error", "message": message, "workers_killed": killed[WORKER],
                        "beats_killed": killed[BEAT]}), 500
    status = "success" if not survivors else "error"
    if survivors:
        message += f"; processes still alive: {survivors}"
    log.info("stop-celery: %s", message)
    return jsonify({"status": status, "message": message, "workers_killed": killed[WORKER],
                    "beats_killed": killed[BEAT]}), (200 if not survivors else 500)


@api.post("/scheduler/start-celery/")
@operator
def start_celery():
    """Seed 000: start whichever of worker and Beat is not running; never a second copy."""
    results = supervisor().start()
    worker, beat = results[WORKER], results[BEAT]
    ok = worker.ok and beat.ok
    message = f"Worker: {worker.message}. Beat: {beat.message}."
    log.info("start-celery: %s", message)
    body = {"status": "success" if ok else "error", "message": message,
            "worker_pids": worker.pids, "beat_pids": beat.pids}
    if not ok:
        body["log_tail"] = {r.kind: r.log_tail for r in (worker, beat) if not r.ok}
    return jsonify(body), (200 if ok else 500)


@api.get("/api/logs/<any(worker, beat):program>")
@viewer
def process_log(program):
    """The last lines of the worker's or Beat's log, as Supervisor's tail shows them."""
    try:
        lines = min(max(int(request.args.get("lines", 50)), 1), 1000)
    except ValueError:
        return error_response(400, "lines must be a whole number")
    path = supervisor().log_path(program)
    return jsonify({"program": program, "path": str(path), "exists": path.exists(),
                    "lines": tail(path, lines).splitlines()})


@api.get("/api/me")
@viewer
def me():
    """Who the panel thinks you are, and what you may do."""
    identity = g.identity
    return jsonify({"username": identity.username, "role": identity.role, "via": identity.via})


@api.get("/api/audit")
@admin
def audit_events():
    """The audit log, newest first; `before` (an id) pages back, `actor` and `action` filter."""
    limit = whole_arg("limit", 1, audit.PAGE_SIZE_MAX, default=100)
    before = whole_arg("before", 1, ID_MAX)
    events = audit.events(limit, before, request.args.get("actor"), request.args.get("action"))
    return jsonify({"events": [audit.as_dict(e) for e in events],
                    "next_before": events[-1].id if len(events) == limit else None})


@api.get("/api/openapi.json")
@viewer
def openapi_document():
    from panel.web.openapi import document
    return jsonify(document())
