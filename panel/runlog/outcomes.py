"""How a run ends, decided in one place: every path that ends a run, or learns how it ended, comes through here.

Every ending here keeps the rule of ending.py: the first ending of a run stays.
"""
import json
import logging
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import select, update

from models import COMPLETED, FAILED, UNKNOWN, Run, Schedule, db, utcnow
from panel.runlog import runtime
from panel.runlog.ending import OPEN, guard
from panel.runlog.recorder import as_naive_utc, clip

log = logging.getLogger("panel.outcomes")
BATCH = 500  # ids per statement: inside every database's limit on bound parameters
ENDED = "ENDED"  # the state of a run that certainly ended while nobody saw how (status UNKNOWN)


@dataclass(frozen=True)
class Ending:
    """How runs end: the Celery state they end in, what their row says, and which path ended them."""

    state: str
    reason: str
    cause: str

    @property
    def status(self):
        return {"SUCCESS": COMPLETED, ENDED: UNKNOWN}.get(self.state, FAILED)


CANCELLED = Ending("REVOKED", "Task cancelled manually", "cancel")
CLEANED_UP = Ending("REVOKED", "Cleaned up manually: the task will not run", "cleanup")
STOPPED = Ending("FAILURE", "Celery was stopped from the panel while this task was running", "stop")
STOPPED_WAITING = Ending("REVOKED", "Celery was stopped from the panel while this task waited for its next retry; "
                                    "revoked so that it does not come back", "stop")


def revoked(who):
    return Ending("REVOKED", f"Revoked by {who}: the task will not run", "revoke")


def retries_stopped(who):
    return Ending("REVOKED", f"Retry loop stopped manually by {who}", "retries_stopped")


def purged(queue):
    return Ending("REVOKED", f"Its message was purged from queue {queue}: the task will not run", "purge")


def lost(worker, how):
    return Ending("FAILURE", f"Worker {worker} {how}; the run was lost", "lost")


def unknown(how):
    """A run that certainly ended, its outcome seen by nobody and stored nowhere: said as unknown, never as failed."""
    return Ending(ENDED, f"{how}, so its outcome is unknown", "unknown")


def revoked_by_worker(worker):
    return Ending("REVOKED", f"Revoked: worker {worker} lists it as revoked and no longer holds it", "revoked_list")


class Ended(NamedTuple):
    runs: int
    schedules: int


def end(celery_task_ids, ending):
    """Open runs among these end now as `ending` says, and their schedules follow; says how many of each."""
    ids = list(dict.fromkeys(i for i in celery_task_ids if i))
    now, ended = utcnow(), []
    ran = runtime.seconds(Run.started_at, now, db.session.get_bind().dialect.name)
    for start in range(0, len(ids), BATCH):
        batch = ids[start:start + BATCH]
        ended += db.session.execute(
            guard(update(Run).where(Run.celery_task_id.in_(batch)), "ended", Run.status)
            .values(status=ending.status, state=ending.state, finished_at=now, runtime_s=ran, error=ending.reason,
                    next_retry_at=None)
            .returning(Run.celery_task_id, Run.scheduled_task_id)
            .execution_options(synchronize_session=False)).all()
    _schedules_follow({schedule for _, schedule in ended if schedule}, ending.status)
    db.session.commit()
    if ended:
        log.info("%d run(s) ended %s (%s): %s", len(ended), ending.state, ending.cause, ending.reason)
    return Ended(len(ended), len({schedule for _, schedule in ended if schedule}))


def from_backend(celery_task_id, meta):
    """An open run takes the outcome its result backend stored: result or error, traceback, end time."""
    succeeded = meta["status"] == "SUCCESS"
    values = {"status": COMPLETED if succeeded else FAILED, "state": meta["status"], "next_retry_at": None,
              "finished_at": as_naive_utc(meta.get("date_done")) or utcnow()}
    if succeeded:
        values.update(result=clip(json.dumps(meta.get("result"), default=repr, ensure_ascii=False)), error=None)
    else:
        exc = meta.get("result")
        values.update(error=clip(f"{type(exc).__name__}: {exc}"), traceback=clip(meta.get("traceback")))
    values["runtime_s"] = runtime.seconds(Run.started_at, values["finished_at"], db.session.get_bind().dialect.name)
    ended = db.session.execute(guard(update(Run).where(Run.celery_task_id == celery_task_id), "ended", Run.status)
                               .values(**values).returning(Run.scheduled_task_id)).all()
    _schedules_follow({schedule for (schedule,) in ended if schedule}, values["status"])
    db.session.commit()
    if ended:
        log.warning("run %s had ended %s in the result backend; recorded", celery_task_id, meta["status"])
    return len(ended)


def _schedules_follow(schedule_ids, status):
    """The schedules whose runs just ended show how they ended."""
    if schedule_ids:
        db.session.execute(update(Schedule).where(Schedule.id.in_(sorted(schedule_ids))).values(status=status)
                           .execution_options(synchronize_session=False))


def open_ids(celery_task_ids):
    """Which of these runs are still open (a read; it holds nothing)."""
    ids = list(celery_task_ids)
    found = db.session.scalars(select(Run.celery_task_id).where(Run.celery_task_id.in_(ids),
                                                                Run.status.in_(OPEN))).all() if ids else []
    db.session.rollback()
    return set(found)
