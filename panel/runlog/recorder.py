"""The run log: Celery signals move each run's row from sent to its end, in whatever process fires them."""
import atexit
import json
import logging
import os
import threading
import time
from datetime import datetime, timezone

from celery import signals
from sqlalchemy import func, select
from sqlalchemy.exc import InterfaceError, OperationalError

from models import COMPLETED, FAILED, PENDING, RUNNING, Run, db, utcnow
from panel.database import dispose_after_fork, reader
from panel.runlog import prepared, statements
from panel.runlog.spool import Spool
from panel.runlog.writer import RunWriter

log = logging.getLogger("panel.recorder")
SCHEDULE_HEADER = "panel_schedule_id"
RETRY_OF_HEADER = "panel_retry_of"  # a run sent again from the panel names the run it retries
RESULT_MAX_CHARS = 64 * 1024
TRANSIENT_RETRY_S = (0.05, 0.25)
SPOOL_ROW_WAIT_S = 300  # a kept update whose run row never appears is written (to nothing) after this
logs_t = Run.__table__

_engine = None
_sql = {}
_spool = None
_writer = None  # this process's writer: changes commit behind the send and the task (writer.py)
_writer_lock = threading.Lock()
_direct = False  # a worker's main process forks: a thread's lock held at a fork is held for ever in the child


def _run(steps):
    return prepared.run(_engine, *((_sql[name], values) for name, values in steps))


def _record(*steps):
    """A run change, queued for this process's writer: neither a send nor a task waits on the database."""
    global _writer
    if _direct:
        return _write(*steps)
    if _writer is None:  # the lock only for the first change of a process, not for every change
        with _writer_lock:
            _writer = _writer or RunWriter(_write_batch)
    _writer.put(steps)


def flush():
    """Wait until every change this process queued is written: the panel answers a send once its row exists."""
    if _writer is not None:
        _writer.flush()


def _forget_writer():
    """A forked child has the parent's writer object but not its thread: its first change starts its own."""
    global _writer, _writer_lock
    _writer, _writer_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_writer)
atexit.register(flush)  # a sender or Beat that exits normally writes what it queued (a pool process: see below)


def _write(*steps):
    """One short transaction; a database that refuses gets the change later from the spool, never lost."""
    try:
        return _attempt(steps)
    except Exception:  # never raised into the task
        log.exception("could not record a run change")
        return None


def _write_batch(changes):
    """The writer's changes in one transaction; one the database rejects must not take the others along."""
    changes = statements.merged(changes)
    try:
        _attempt([step for steps in changes for step in steps])
    except Exception as exc:
        log.warning("a batch of %d run changes failed (%s); writing them one by one", len(changes), exc)
        for steps in changes:
            _write(*steps)


def _attempt(steps):
    """Write, or keep in the spool what the database refuses; raises only what it will never take."""
    if _spool is not None and _spool.pending:
        _spool.replay(_run, refused, _row_ready)
        if _spool.pending:  # still refused: queue behind the waiting ones, in order
            _spool.keep(steps, "earlier writes still waiting")
            return None
    try:
        return _run_retrying(steps)
    except Exception as exc:
        if _spool is None or not refused(exc):
            raise
        _spool.keep(steps, getattr(exc, "orig", None) or exc)
        return None


def _run_retrying(steps):
    """PostgreSQL may refuse once (a deadlock, a dropped connection): try again at once, then keep it.

    SQLite's "locked" already waited out its busy timeout, so it is kept straight away.
    """
    for pause_s in TRANSIENT_RETRY_S:
        try:
            return _run(steps)
        except Exception as exc:
            if _engine.dialect.name == "sqlite" or not refused(exc):
                raise
            log.warning("run-log write refused (%s); trying again in %.2f s", exc, pause_s)
            time.sleep(pause_s)
    return _run(steps)


def refused(exc):
    """The database refused (locked past the busy timeout, unreachable, connection lost): worth trying later.

    The hot path runs on the DBAPI cursor, so the driver's own exceptions arrive here as well as SQLAlchemy's.
    """
    dbapi = _engine.dialect.dbapi
    return isinstance(exc, (OperationalError, InterfaceError, dbapi.OperationalError, dbapi.InterfaceError))


def replay_spool():
    """Write run changes kept while the database was away (the panel's background loop calls this)."""
    return _spool.replay(_run, refused, _row_ready) if _spool is not None and _spool.waiting() else 0


def _row_ready(steps, age_s):
    """A kept update waits for its run's row, which the sender may still be keeping (or give up after a while)."""
    if age_s > SPOOL_ROW_WAIT_S:
        return True
    made_here = {values["celery_task_id"] for name, values in steps if name in ("insert", "started", "ran")}
    ids = {values["tid"] for _, values in steps if "tid" in values} - made_here
    if not ids:
        return True
    with reader(_engine).connect() as conn:
        found = conn.execute(select(func.count()).select_from(logs_t)
                             .where(logs_t.c.celery_task_id.in_(sorted(ids)))).scalar_one()
    return found == len(ids)


def clip(text, limit=RESULT_MAX_CHARS):
    """Text cut to what a run-log column keeps."""
    return text if text is None or len(text) <= limit else text[:limit] + "…[truncated]"


def as_naive_utc(value):
    """A datetime or ISO text as the naive UTC the run log stores."""
    if not value:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def on_publish(sender=None, body=None, headers=None, **_):
    """A message left (after_task_publish: a failed send records nothing): insert, or a retry's update."""
    headers = headers or {}
    task_id = headers.get("id")
    if not task_id:
        return
    retries = int(headers.get("retries") or 0)
    eta = as_naive_utc(headers.get("eta"))
    if retries:
        _record(("retry_sent", {"tid": task_id, "retries": retries, "eta": eta}))
        return
    args, kwargs = (body[0], body[1]) if isinstance(body, (list, tuple)) and len(body) >= 2 else ((), {})
    _record(("insert", {
        "celery_task_id": task_id, "task_name": headers.get("task") or sender,
        "scheduled_task_id": headers.get(SCHEDULE_HEADER), "status": PENDING, "state": "PENDING",
        "args": list(args or []), "kwargs": dict(kwargs or {}), "queued_at": utcnow(), "started_at": None,
        "worker": None, "retries": 0, "next_retry_at": eta, "eta": eta, "retry_of": headers.get(RETRY_OF_HEADER)}))


def on_schedule_publish(sender=None, headers=None, **_):
    """A scheduled task was sent (by Beat, run-now or anyone): its last run and count move."""
    headers = headers or {}
    schedule_id = headers.get(SCHEDULE_HEADER)
    if not schedule_id or int(headers.get("retries") or 0):
        return
    _record(("schedule_sent", {"sid": int(schedule_id), "now": utcnow()}))


def _schedule_status(request, task_id, status):
    """The step that moves the run's schedule badge, or none for a run no schedule sent (most runs, and the task's
    own path). A worker shows the message's headers as the request's attributes, an eager apply in
    `request.headers`; a retry's message may not carry them, so a retry always looks."""
    headers = getattr(request, "headers", None) or {}
    if request is None or getattr(request, "retries", 0) or getattr(request, SCHEDULE_HEADER, None) is not None \
            or SCHEDULE_HEADER in headers:
        return (("schedule_status", {"tid": task_id, "st": status}),)
    return ()


def on_prerun(task_id=None, task=None, args=None, kwargs=None, **_):
    """The worker began executing: running, with the worker's name and the start time.

    The whole row goes along, for a run whose producer records nothing (it is inserted then).
    """
    now = utcnow()
    _record(("started", {
        "celery_task_id": task_id, "task_name": task.name, "scheduled_task_id": None, "status": RUNNING,
        "state": "STARTED", "args": list(args or []), "kwargs": dict(kwargs or {}), "queued_at": now,
        "started_at": now, "worker": getattr(task.request, "hostname", None),
        "retries": int(task.request.retries or 0), "next_retry_at": None, "eta": None, "retry_of": None}),
        *_schedule_status(task.request, task_id, RUNNING))


def on_success(sender=None, result=None, **_):
    task_id = sender.request.id
    text = clip(json.dumps(result, default=repr, ensure_ascii=False))  # "café" as it is: a search finds it
    _record(("succeeded", {"tid": task_id, "now": utcnow(), "result": text}),
            *_schedule_status(sender.request, task_id, COMPLETED))


def on_failure(sender=None, task_id=None, exception=None, einfo=None, **_):
    _record(("failed", {"tid": task_id, "now": utcnow(), "error": clip(f"{type(exception).__name__}: {exception}"),
                       "tb": clip(getattr(einfo, "traceback", None))}),
            *_schedule_status(getattr(sender, "request", None), task_id, FAILED))


def on_retry(sender=None, request=None, reason=None, **_):
    """The run will be tried again: count it and keep the last error."""
    _record(("retrying", {"tid": request.id, "retries": int(request.retries or 0) + 1, "error": clip(str(reason))}))


def on_refused(sender=None, message=None, exc=None, name=None, id=None, **_):
    """A worker refused a message (task_rejected) or knew no such task type (task_unknown): the run ends."""
    headers = getattr(message, "headers", None) or {}
    task_id = id or headers.get("id")
    if not task_id:
        return
    kind = f"an unknown task type {name!r}" if name else "a message it could not take"
    detail = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
    _record(("failed", {"tid": task_id, "now": utcnow(), "tb": None,
                        "error": clip(f"Rejected by the worker: {kind}{detail}")}),
            ("schedule_status", {"tid": task_id, "st": FAILED}))


def on_revoked(request=None, terminated=False, signum=None, expired=False, **_):
    """Revoked before or during execution: the run ends failed, and says why."""
    why = f"terminated by signal {signum}" if terminated else ("expired" if expired else "revoked")
    _record(("revoked", {"tid": request.id, "now": utcnow(), "error": f"Task {why}"}),
           ("schedule_status", {"tid": request.id, "st": FAILED}))


def connect(app, celery):
    """Bind the handlers to this app's engine; weak=False keeps them alive in every process."""
    global _engine, _sql, _spool
    flush()  # what this process queued goes to the database it was meant for
    with app.app_context():
        _engine = db.engine
    _spool = Spool(app.config["INSTANCE_PATH"])
    _sql = {name: prepared.Prepared(_engine, stmt)
            for name, stmt in statements.for_dialect(_engine.dialect.name).items()}
    signals.worker_process_init.connect(lambda **_: dispose_after_fork(app), weak=False)
    signals.after_task_publish.connect(on_schedule_publish, weak=False)
    if not app.config["RECORD_RUNS"]:
        return
    signals.worker_init.connect(_write_directly, weak=False)
    signals.worker_process_init.connect(_start_writer, weak=False)
    signals.worker_process_shutdown.connect(_flush_writer, weak=False)
    signals.after_task_publish.connect(on_publish, weak=False)
    signals.task_prerun.connect(on_prerun, weak=False)
    signals.task_success.connect(on_success, weak=False)
    signals.task_failure.connect(on_failure, weak=False)
    signals.task_retry.connect(on_retry, weak=False)
    signals.task_revoked.connect(on_revoked, weak=False)
    signals.task_rejected.connect(on_refused, weak=False)
    signals.task_unknown.connect(on_refused, weak=False)


def _write_directly(**_):
    """The worker's main process (and a solo pool's tasks in it) writes at once: it forks, it keeps no threads."""
    global _direct
    _direct = True


def _start_writer(**_):
    """A prefork pool process starts its writer before its first task."""
    global _writer, _direct
    _direct, _writer = False, RunWriter(_write_batch)


def _flush_writer(**_):
    """The pool process is about to exit (shutdown, max tasks per child; it skips atexit): what is queued is written."""
    flush()


def count_runs():
    """Rows in the run log (for benchmarks and checks)."""
    with _engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(logs_t)).scalar_one()
