"""A background thread in the panel that ends runs whose worker no longer holds them, without anyone asking.

What became of each open run is decided in settle.py, the same rule the panel applies once at start-up. Runs of
this host's own worker are settled only while no start or stop holds the control lock: a stop through the panel
says itself how its runs ended ("Celery was stopped..."), not "lost".
"""
import logging
import threading
import time
from datetime import timedelta

from sqlalchemy import select

from models import RUNNING, Run, db, utcnow
from panel.broker import connection, events, queues
from panel.errors import ControlBusy
from panel.runlog import from_events, settle

log = logging.getLogger("panel.reconciler")
EVERY_S = 20  # a lost run is failed within about three times this (the issue asks for 60 s)
MIN_AGE_S = 5  # a run younger than this may simply not have reached the worker's list yet
START_WAIT_S = 120.0  # the start-up pass waits this long at most for the run log from events to catch up


def running_by_worker(min_age_s=None):
    """{worker: [celery task ids]} of the runs the log shows running for a while (MIN_AGE_S, read at call time)."""
    cutoff = utcnow() - timedelta(seconds=MIN_AGE_S if min_age_s is None else min_age_s)
    rows = db.session.execute(select(Run.celery_task_id, Run.worker).where(
        Run.status == RUNNING, Run.started_at <= cutoff)).all()
    db.session.rollback()  # no transaction held while we wait for workers
    by_worker = {}
    for task_id, worker in rows:
        by_worker.setdefault(worker, []).append(task_id)
    return by_worker


def _lock_free(supervisor):
    try:
        with supervisor.control_lock(wait_s=0):
            return True
    except ControlBusy:
        return False


def reconcile(celery, supervisor, timeout_s=1.0, min_age_s=None):
    """One pass over every open run old enough (MIN_AGE_S); returns how many runs it ended."""
    runs = settle.open_runs(MIN_AGE_S if min_age_s is None else min_age_s)
    own = supervisor.nodename
    if any(run.worker == own for run in runs) and not _lock_free(supervisor):
        log.info("reconcile: a start or stop of %s is under way; it says how its runs ended", own)
        runs = [run for run in runs if run.worker != own]
    if not runs:
        return 0
    try:
        facts = settle.survey(celery, runs, timeout_s)
    except Exception as exc:  # broker down: we cannot know, so we change nothing
        log.warning("reconcile: cannot ask the workers (%s); leaving the runs alone", exc)
        return 0
    ours = [run for run in runs if run.worker == own]
    fixed = settle.apply([run for run in runs if run.worker != own], facts)
    if ours:
        try:
            with supervisor.control_lock(wait_s=0):  # a stop that began meanwhile says how its runs ended
                fixed += settle.apply(ours, facts)
        except ControlBusy:
            log.info("reconcile: a start or stop of %s began; it says how its runs ended", own)
    return fixed


def reconcile_once(app):
    with app.app_context():
        try:
            return reconcile(app.extensions["celery"], app.extensions["supervisor"])
        finally:
            db.session.rollback()


def caught_up(app, stop, listening, wait_s):
    """Wait (at most wait_s) until the run log from events listens and has read what waited for it; True if so."""
    deadline = time.monotonic() + wait_s
    while not listening.wait(0.2):  # in slices: a panel stopped meanwhile ends this thread at once
        if stop.is_set() or time.monotonic() >= deadline:
            return False
    config = app.config
    if connection.is_redis(config["CELERY_BROKER_URL"]):
        return True  # PUB/SUB: nothing waited; what ended meanwhile is in the result backend
    name = events.durable_queue_name(config["INSTANCE_PATH"])
    while not stop.is_set():
        try:
            if queues.sizes(app.extensions["celery"], [name])[name] == 0:
                return not stop.wait(from_events.Batcher.FLUSH_S * 2)  # and the last batch written
        except Exception as exc:  # the broker is away: the pass would change nothing anyway
            log.warning("start-up settle: cannot read the event queue (%s)", exc)
        if time.monotonic() >= deadline:
            return False
        stop.wait(0.2)
    return False


def settle_at_start(app, stop, listening, wait_s=START_WAIT_S):
    """The start-up pass: once the recorder caught up, every open run is worked out at once; how many ended."""
    started = time.monotonic()
    if not caught_up(app, stop, listening, wait_s):
        log.warning("start-up settle: the run log from events did not catch up in %ss; the periodic passes will",
                    wait_s)
        return None
    ended = reconcile_once(app)
    app.extensions["settled_at_start"] = {"ended": ended, "seconds": time.monotonic() - started}
    log.info("start-up settle: %d open run(s) ended in %.1fs", ended, time.monotonic() - started)
    return ended


def start(app, every_s=EVERY_S, listening=None):
    """Start the loop as a daemon thread; returns its stop event. With `listening` (an Event the run log from
    events sets), a first pass runs as soon as the recorder caught up."""
    stop = threading.Event()

    def loop():
        if listening is not None:
            try:
                settle_at_start(app, stop, listening)
            except Exception:  # the loop must outlive a bad pass (database or broker away)
                log.exception("start-up settle failed; the periodic passes go on")
        while not stop.wait(every_s):
            try:
                reconcile_once(app)
            except Exception:  # the loop must outlive a bad pass (database or broker away)
                log.exception("reconcile pass failed; trying again in %ss", every_s)

    threading.Thread(target=loop, name="run-reconciler", daemon=True).start()
    return stop
