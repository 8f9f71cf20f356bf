"""The run log read: one run, a schedule's runs, the runs a worker holds, and a run as the API shows it."""
from sqlalchemy import bindparam, select

from models import PENDING, RUNNING, Run, Schedule, db, iso
from panel import reads
from panel.reads import PreparedRead
from panel.runlog import previews
from panel.runlog.ending import OPEN

RUNS_PAGE_MAX = 500


def as_dict(run):
    """A run as the API shows it: whole from the run table, or cut to previews from a list query (previews.py)."""
    runtime = run.runtime_s
    if runtime is None and run.started_at and run.finished_at:  # a writer that kept no runtime (see runtime.py)
        runtime = (run.finished_at - run.started_at).total_seconds()
    shown, cut = previews.values(run)
    return {
        "celery_task_id": run.celery_task_id, "task": run.task_name, "scheduled_task_id": run.scheduled_task_id,
        "status": run.status, "state": run.state, "args": shown["args"], "kwargs": shown["kwargs"],
        "queued_at": iso(run.queued_at), "started_at": iso(run.started_at), "finished_at": iso(run.finished_at),
        "runtime_s": runtime, "worker": run.worker, "result": shown["result"], "error": shown["error"],
        "traceback": shown["traceback"], "retries": run.retries, "next_retry_at": iso(run.next_retry_at),
        "eta": iso(run.eta), "retry_of": run.retry_of,
        "args_known": shown["args"] is not None and shown["kwargs"] is not None, "cut": cut,
    }


def args_known(run):
    """Whether anyone recorded the run's arguments (its send or receipt seen, or an extended result read back)."""
    return run.args is not None and run.kwargs is not None


def schedule_names(rows):
    """{schedule id: name} of the schedules a page of runs came from, in one query."""
    ids = {row.scheduled_task_id for row in rows if row.scheduled_task_id}
    if not ids:
        return {}
    return dict(db.session.execute(select(Schedule.id, Schedule.name).where(Schedule.id.in_(ids))).all())


def get(celery_task_id):
    return db.session.scalar(select(Run).where(Run.celery_task_id == celery_task_id))


# Built once: a statement of every column costs more to build than to run (SQLAlchemy coerces each column anew).
_DETAIL = PreparedRead(select(*Run.__table__.columns, Schedule.name.label("schedule_name"))
                       .outerjoin(Schedule, Schedule.id == Run.scheduled_task_id)
                       .where(Run.celery_task_id == bindparam("id")), "Run")
_RETRIES = PreparedRead(select(Run.celery_task_id).where(Run.retry_of == bindparam("id"))
                        .order_by(Run.queued_at, Run.id), "Retry")


def detail(celery_task_id):
    """(the whole run, its schedule's name or None, the ids of the runs sent as its retries), or None: one deferred
    read transaction, prepared statements, no ORM session (a poll of one run costs two indexed lookups and little
    more)."""
    with reads.reading(db.engine) as conn:
        run = _DETAIL.first(conn, id=celery_task_id)
        if run is None:
            return None
        retries = [row.celery_task_id for row in _RETRIES.rows(conn, id=celery_task_id)]
    return run, run.schedule_name, retries


def of_schedule(schedule_id, limit=100):
    """The schedule's runs, newest first, with previews (a list: see previews.py)."""
    query = (select(*previews.LIST_COLUMNS).where(Run.scheduled_task_id == schedule_id)
             .order_by(Run.queued_at.desc(), Run.id.desc()).limit(min(max(limit, 1), RUNS_PAGE_MAX)))
    return db.session.execute(query).all()


def open_runs_of(schedule_id):
    return db.session.scalars(select(Run).where(
        Run.scheduled_task_id == schedule_id, Run.status.in_(OPEN))).all()


def end_transaction():
    """Before waiting on the outside world: hold no database transaction (SQLite's write lock)."""
    db.session.rollback()


def held_by(worker):
    """(running ids, ids waiting for a retry) of the runs the named worker holds now, by the log."""
    rows = db.session.execute(select(Run.celery_task_id, Run.status, Run.state).where(
        Run.worker == worker, Run.status.in_(OPEN))).all()
    db.session.rollback()
    running = [cid for cid, status, _ in rows if status == RUNNING]
    waiting = [cid for cid, status, state in rows if status == PENDING and state == "RETRY"]
    return running, waiting
