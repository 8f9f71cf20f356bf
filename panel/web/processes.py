"""The process endpoints: Beat's status and restart (the legacy status routes), the toolbar's Celery controls."""
import logging

from flask import current_app, g, jsonify
from sqlalchemy.exc import SQLAlchemyError

from panel.host import progress
from panel.host.processes import BEAT, WORKER
from panel.supervision import watchdog
from panel.supervision.stop_celery import stop_celery as stop_all
from panel.web import shared
from panel.web.contract import api
from panel.web.errors import error_response
from panel.web.hosts import fleet, pane
from panel.web.schemas.processes import BeatRestarted, BeatStatus, CeleryStatus, LogQuery, ProcessLog, Started, Stopped

log = logging.getLogger("panel.control")
START_COMMAND = "./start_celery_beat.sh"


def supervisor():
    return current_app.extensions["supervisor"]


@api(BeatStatus, legacy_shape=True)
def celery_status():
    """Is Beat running, and with which PIDs (the body is the legacy contract: its age is said in headers)."""
    snap = shared.snapshot("beat", _beat_status)
    return jsonify(snap.value), snap.headers()


def _beat_status():
    beat = supervisor().status()[BEAT]
    return {"running": beat["active"], "pids": beat["pids"], "count": beat["count"], "hosts": pane()}


@api(BeatRestarted, 409, 500, legacy_shape=True)
def restart_celery_beat():
    """Restart a running Beat; a Beat that is not running is a 200 with instructions.

    409: another start, stop or restart is in progress; 500: Beat stopped but did not start again, or the OS
    refused a signal; 503: the broker is down (Beat is left running).
    """
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


@api(CeleryStatus)
def scheduler_celery_status():
    """The dashboard's status: overall running or stopped, the worker's and Beat's own status, and how old it is."""
    snap = shared.snapshot("dashboard", _dashboard_status)
    return jsonify({**snap.value, "as_of": snap.as_of, "max_age_s": snap.max_age_s}), snap.headers()


def _dashboard_status():
    status = supervisor().status()
    worker, beat = status[WORKER], status[BEAT]
    running = worker["active"] and beat["active"]
    dogs = _watchdogs()
    worker_view = dict(_program(worker, dogs.get(WORKER)), pool_pids=worker["pool_pids"],
                       pool_processes=sum(len(p) for p in worker["pool_pids"].values()))
    return {"status": "running" if running else "stopped", "running": running,
            "worker": worker_view, "beat": _program(beat, dogs.get(BEAT)),
            "progress": progress.current(supervisor().instance),
            "manager": current_app.config["PROCESS_MANAGER"], "hosts": pane()}


def _program(process, dog):
    """One program as the dashboard's status shows it; a watched program that is down shows the watchdog's state."""
    state = dog["state"] if dog and dog["enabled"] and not process["active"] else process["state"]
    return {"active": process["active"], "status": "active" if process["active"] else "inactive",
            "pids": process["pids"], "count": process["count"], "state": state, "uptime_s": process["uptime_s"],
            "watchdog": dog}


def _watchdogs():
    """The watchdog's view per program; the process table answers even when the database does not."""
    try:
        return watchdog.view()
    except SQLAlchemyError as exc:
        log.warning("status without the watchdog's view: %s", exc)
        return {}


@api(Stopped, 409, (500, Stopped))
def stop_celery():
    """Stop Celery: stop worker and Beat, then make the database tell the truth (500: something survived)."""
    report = stop_all(supervisor(), current_app.extensions["celery"])
    hosts = _everywhere("stop", report.ok, report.message)
    ok = report.ok and all(h["ok"] for h in hosts)
    body = {"status": "success" if ok else "error", "message": report.message,
            "workers_killed": report.killed[WORKER], "beats_killed": report.killed[BEAT], "hosts": hosts}
    return jsonify(body), (200 if ok else 500)


def _everywhere(action, ok, message):
    """The same action on every other host of the pane (in parallel); this host's own outcome first when it is one."""
    pane_fleet = fleet()
    own = [{"host": pane_fleet.local, "ok": ok, "message": message}] if pane_fleet.local else []
    identity = g.get("identity")
    return own + pane_fleet.act_everywhere(action, identity.username if identity else None)


@api(Started, 409, (500, Started))
def start_celery():
    """Start Celery: start whichever of worker and Beat is not running; never a second copy (500: a start failed)."""
    sup = supervisor()
    with sup.control_lock(), progress.doing(sup.instance, "starting", sup.start_timeout_s):  # a 409 writes nothing
        results = sup.start()
    worker, beat = results[WORKER], results[BEAT]
    ok = worker.ok and beat.ok
    message = f"Worker: {worker.message}. Beat: {beat.message}."
    log.info("start-celery: %s", message)
    hosts = _everywhere("start", ok, message)
    body = {"status": "success" if ok and all(h["ok"] for h in hosts) else "error", "message": message,
            "worker_pids": worker.pids, "beat_pids": beat.pids, "hosts": hosts}
    if not ok:
        body["log_tail"] = {r.kind: r.log_tail for r in (worker, beat) if not r.ok}
    return jsonify(body), (200 if body["status"] == "success" else 500)


@api(ProcessLog, 400)
def process_log(program, query: LogQuery):
    """The last lines of the worker's or Beat's log, as Supervisor's tail shows them."""
    return jsonify({"program": program, **supervisor().log_view(program, query.lines)})
