"""The run log as a service: queries, and the bulk updates that keep it truthful."""
import json
import logging
from datetime import timedelta

from sqlalchemy import select, update

from models import COMPLETED, FAILED, PENDING, RUNNING, Run, Schedule, db, utcnow
from panel.broker import remote, results
from panel.runlog.recorder import as_naive_utc, clip

log = logging.getLogger("panel.runs")
OPEN = (PENDING, RUNNING)
RECONCILE_MIN_AGE_S = 5  # a run younger than this may simply not have reached the worker's list yet
RUNS_PAGE_MAX = 500


def _iso(value):
    return value.isoformat() + "Z" if value else None


def as_dict(run):
    runtime = (run.finished_at - run.started_at).total_seconds() if run.started_at and run.finished_at else None
    return {
        "celery_task_id": run.celery_task_id, "task": run.task_name, "scheduled_task_id": run.scheduled_task_id,
        "status": run.status, "state": run.state, "args": run.args, "kwargs": run.kwargs,
        "queued_at": _iso(run.queued_at), "started_at": _iso(run.started_at), "finished_at": _iso(run.finished_at),
        "runtime_s": runtime, "worker": run.worker, "result": run.result, "error": run.error,
        "traceback": run.traceback, "retries": run.retries, "next_retry_at": _iso(run.next_retry_at),
    }


def get(celery_task_id):
    return db.session.scalar(select(Run).where(Run.celery_task_id == celery_task_id))


def of_schedule(schedule_id, limit=100):
    query = (select(Run).where(Run.scheduled_task_id == schedule_id)
             .order_by(Run.queued_at.desc(), Run.id.desc()).limit(min(max(limit, 1), RUNS_PAGE_MAX)))
    return db.session.scalars(query).all()


def open_runs_of(schedule_id):
    return db.session.scalars(select(Run).where(
        Run.scheduled_task_id == schedule_id, Run.status.in_(OPEN))).all()


def mark_failed(celery_task_ids, reason, state="REVOKED"):
    """Open runs among these become failed now, with the reason; their tasks follow."""
    if not celery_task_ids:
        return 0
    now = utcnow()
    result = db.session.execute(update(Run).where(
        Run.celery_task_id.in_(celery_task_ids), Run.status.in_(OPEN)).values(
        status=FAILED, state=state, finished_at=now, error=reason).execution_options(synchronize_session=False))
    _schedules_follow(celery_task_ids, FAILED)
    db.session.commit()
    return result.rowcount


def _schedules_follow(celery_task_ids, status):
    """The scheduled tasks these runs came from take the runs' new status."""
    task_ids = select(Run.scheduled_task_id).where(Run.celery_task_id.in_(celery_task_ids)).scalar_subquery()
    db.session.execute(update(Schedule).where(Schedule.id.in_(task_ids)).values(status=status)
                       .execution_options(synchronize_session=False))


def end_transaction():
    """Before waiting on the outside world: hold no database transaction (SQLite's write lock)."""
    db.session.rollback()


def fail_running(reason):
    """Every running run and running task becomes failed, finished now, with the reason."""
    now = utcnow()
    logs = db.session.execute(update(Run).where(Run.status == RUNNING).values(
        status=FAILED, state="FAILURE", finished_at=now, error=reason))
    tasks = db.session.execute(update(Schedule).where(Schedule.status == RUNNING)
                               .values(status=FAILED).execution_options(synchronize_session=False))
    db.session.commit()
    return tasks.rowcount, logs.rowcount


def reconcile(celery, timeout_s=1.0):
    """Runs the database shows running but no live worker holds become failed, saying why."""
    cutoff = utcnow() - timedelta(seconds=RECONCILE_MIN_AGE_S)
    running = db.session.execute(select(Run.celery_task_id, Run.worker).where(
        Run.status == RUNNING, Run.started_at <= cutoff)).all()
    db.session.rollback()  # no transaction held while we wait for workers
    by_worker = {}
    for task_id, worker in running:
        by_worker.setdefault(worker, []).append(task_id)
    fixed = 0
    for worker, task_ids in by_worker.items():
        try:
            active = remote.active_ids(celery, worker, timeout_s) if worker else None
        except Exception as exc:  # broker down: we cannot know, so we change nothing
            log.warning("reconcile: cannot ask %s (%s); leaving its runs alone", worker, exc)
            continue
        if active is None:
            reason = f"Worker {worker} is gone (no answer to inspect); the run was lost"
            lost = task_ids
        else:
            reason = f"Worker {worker} no longer executes this run; it was lost"
            lost = [t for t in task_ids if t not in active]
        if lost:
            # A run can end in the backend while its own row change never arrived (its pool process
            # killed before it committed): the backend's outcome is the truth then, not "lost".
            try:
                ended = results.finished_results(celery, lost)
            except Exception as exc:  # backend away: the worker's silence is all we know
                log.warning("reconcile: cannot read stored results (%s)", exc)
                ended = {}
            for task_id, meta in ended.items():
                fixed += record_outcome(task_id, meta)
            lost = [t for t in lost if t not in ended]
        if lost:
            count = mark_failed(lost, reason, state="FAILURE")
            fixed += count
            log.warning("reconcile: %d run(s) of %s marked failed: %s", count, worker, reason)
    return fixed


def record_outcome(celery_task_id, meta):
    """An open run takes the outcome its result backend stored: result or error, traceback, end time."""
    succeeded = meta["status"] == "SUCCESS"
    values = {"status": COMPLETED if succeeded else FAILED, "state": meta["status"],
              "finished_at": as_naive_utc(meta.get("date_done")) or utcnow()}
    if succeeded:
        values.update(result=clip(json.dumps(meta.get("result"), default=repr)), error=None)
    else:
        exc = meta.get("result")
        values.update(error=clip(f"{type(exc).__name__}: {exc}"), traceback=clip(meta.get("traceback")))
    changed = db.session.execute(update(Run).where(
        Run.celery_task_id == celery_task_id, Run.status.in_(OPEN)).values(**values)).rowcount
    _schedules_follow([celery_task_id], values["status"])
    db.session.commit()
    if changed:
        log.warning("reconcile: run %s had ended %s in the result backend; recorded", celery_task_id, meta["status"])
    return changed
