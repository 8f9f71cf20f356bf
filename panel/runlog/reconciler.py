"""A background thread in the panel that ends runs whose worker no longer holds them, without anyone asking.

Runs of this host's own worker are settled only while no start or stop holds the control lock: a stop
through the panel says itself how its runs ended ("Celery was stopped..."), not "lost".
"""
import logging
import threading
from datetime import timedelta

from sqlalchemy import select

from models import RUNNING, Run, db, utcnow
from panel.broker import remote, results
from panel.errors import ControlBusy
from panel.runlog import outcomes

log = logging.getLogger("panel.reconciler")
EVERY_S = 20  # a lost run is failed within about three times this (the issue asks for 60 s)
MIN_AGE_S = 5  # a run younger than this may simply not have reached the worker's list yet


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


def settle(celery, worker, task_ids, timeout_s=1.0):
    """Ask the worker; runs it no longer executes end as the backend says, or as lost. Returns how many."""
    try:
        active = remote.active_ids(celery, worker, timeout_s) if worker else None
    except Exception as exc:  # broker down: we cannot know, so we change nothing
        log.warning("reconcile: cannot ask %s (%s); leaving its runs alone", worker, exc)
        return 0
    if active is None:
        ending, gone = outcomes.lost(worker, "is gone (no answer to inspect)"), task_ids
    else:
        ending, gone = outcomes.lost(worker, "no longer executes this run"), [t for t in task_ids if t not in active]
    if not gone:
        return 0
    # A run can end in the backend while its own row change never arrived (its pool process killed before
    # it committed): the backend's outcome is the truth then, not "lost".
    try:
        ended = results.finished_results(celery, gone)
    except Exception as exc:  # backend away: the worker's silence is all we know
        log.warning("reconcile: cannot read stored results (%s)", exc)
        ended = {}
    fixed = sum(outcomes.from_backend(task_id, meta) for task_id, meta in ended.items())
    lost = outcomes.end([t for t in gone if t not in ended], ending).runs
    if lost:
        log.warning("reconcile: %d run(s) of %s marked failed: %s", lost, worker, ending.reason)
    return fixed + lost


def reconcile(celery, supervisor, timeout_s=1.0):
    """One pass over every worker the log shows running something; returns how many runs it ended."""
    fixed = 0
    for worker, task_ids in running_by_worker().items():
        if worker != supervisor.nodename:
            fixed += settle(celery, worker, task_ids, timeout_s)
            continue
        try:
            with supervisor.control_lock(wait_s=0):
                fixed += settle(celery, worker, task_ids, timeout_s)
        except ControlBusy:
            log.info("reconcile: a start or stop of %s is under way; it says how its runs ended", worker)
    return fixed


def reconcile_once(app):
    with app.app_context():
        try:
            return reconcile(app.extensions["celery"], app.extensions["supervisor"])
        finally:
            db.session.rollback()


def start(app, every_s=EVERY_S):
    """Start the loop as a daemon thread; returns its stop event."""
    stop = threading.Event()

    def loop():
        while not stop.wait(every_s):
            try:
                reconcile_once(app)
            except Exception:  # the loop must outlive a bad pass (database or broker away)
                log.exception("reconcile pass failed; trying again in %ss", every_s)

    threading.Thread(target=loop, name="run-reconciler", daemon=True).start()
    return stop
