"""The health view: broker and database reachable (with latency), worker and Beat, Beat's last dispatch,
the message waiting longest. Each part answers on its own: one system down never hides the others."""
import logging
import time

from sqlalchemy import select, text

from models import Run, db, iso, utcnow
from panel.beat import claims, in_panel
from panel.broker import connection, results
from panel.cluster import project_conf, queues, workers
from panel.database import reader
from panel.errors import BrokerDown
from panel.host.processes import KINDS

log = logging.getLogger("panel.health")


def _timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, round((time.perf_counter() - started) * 1000, 2)


def check_broker(url):
    try:
        latency = connection.ping(url)
        return {"ok": True, "latency_ms": round(latency, 2)}
    except BrokerDown as exc:
        return {"ok": False, "error": str(exc)}


def check_database():
    try:
        _, latency = _timed(_select_one)
        return {"ok": True, "latency_ms": latency}
    except Exception as exc:  # every driver raises its own kind; the message says what
        return {"ok": False, "error": f"database unreachable: {type(exc).__name__}: {exc}"[:500]}


def _select_one():
    with reader(db.engine).connect() as conn:
        conn.execute(text("SELECT 1"))


def last_dispatch():
    """What a Beat sent last and when, from its claims (None before the first send)."""
    with reader(db.engine).connect() as conn:
        note = claims.last_dispatch(conn)
    if note is None:
        return None
    return {"at": iso(note["at"]), "task": note["task"],
            "age_s": round((utcnow() - note["at"]).total_seconds(), 1)}


def oldest_queued(celery, configured):
    """The message waiting longest, with its age from the run log (when the panel recorded its send)."""
    waiting = queues.oldest_waiting(celery, configured)
    ids = [w["task_id"] for w in waiting if w["task_id"]]
    if not ids:
        return None
    with reader(db.engine).connect() as conn:
        sent = dict(conn.execute(select(Run.celery_task_id, Run.queued_at)
                                 .where(Run.celery_task_id.in_(ids))).all())
    for item in waiting:
        at = sent.get(item["task_id"])
        item["queued_at"] = iso(at)
        item["age_s"] = round((utcnow() - at).total_seconds(), 1) if at else None
    return max(waiting, key=lambda w: w["age_s"] if w["age_s"] is not None else -1)


def project_settings(app, broker_ok=True, database_ok=True):
    """The attached project's real settings, where they were read, and each one that blinds the panel (warnings:
    the panel still works, with less)."""
    cfg, supervisor = app.config, app.extensions["supervisor"]
    known = []
    try:
        known = [row.name for row in workers.rows() if workers.is_online(row)] if database_ok else []
    except Exception:  # the database check says why; the workers are then found by a ping
        log.warning("project settings: the worker list could not be read", exc_info=True)
    conf = project_conf.read(supervisor.host.target, app.extensions["celery"], supervisor.child_env(), known,
                             ask_workers=broker_ok)
    return project_conf.summary(conf, cfg)


def report(app, actor_pid=None, watchdogs=dict):
    """Everything the health view shows; `status` is ok, degraded (something down) or down (broker or DB).

    The caller passes what rooms above this one know: the pid of the panel process whose threads act now, and a
    callable giving each program's watchdog.
    """
    cfg = app.config
    out = {"checked_at": iso(utcnow()), "broker": check_broker(cfg["CELERY_BROKER_URL"]),
           "database": check_database(), "background_actor_pid": actor_pid,
           "backend": results.check(app.extensions["celery"])}
    target = app.extensions["supervisor"].host.target
    out["app"] = {"name": target.app, "workdir": target.workdir, "embedded": target.embedded,
                  "schedules_sent_by": "beat" if target.embedded else "panel",
                  "schedules_paused": in_panel.paused(db.engine) if out["database"]["ok"] else None}
    status = app.extensions["supervisor"].status()
    dogs = watchdogs() if out["database"]["ok"] else {}
    for kind in KINDS:
        out[kind] = {"active": status[kind]["active"], "pids": status[kind]["pids"], "state": status[kind]["state"],
                     "watchdog": dogs.get(kind)}
    out["last_beat_dispatch"] = last_dispatch() if out["database"]["ok"] else None
    out["project"] = project_settings(app, out["broker"]["ok"], out["database"]["ok"])
    out["oldest_queued"] = None
    if out["broker"]["ok"]:
        try:
            out["oldest_queued"] = oldest_queued(app.extensions["celery"], cfg.get("WORKER_QUEUES", ""))
        except Exception as exc:  # a part that fails says so; the rest of the view still answers
            out["oldest_queued"] = {"error": str(exc)}
    down = not (out["broker"]["ok"] and out["database"]["ok"])
    stopped = not all(out[kind]["active"] for kind in KINDS) or not out["backend"]["ok"]
    out["status"] = "down" if down else ("degraded" if stopped else "ok")
    return out
