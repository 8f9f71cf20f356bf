"""Deleting old results: the admin's delete and the retention clean-up, in short batches."""
import logging
from datetime import timedelta

from sqlalchemy import delete, func, select

from models import Run, db, iso, utcnow
from panel.errors import ValidationError

log = logging.getLogger("panel.retention")
FINISHED_STATES = ("SUCCESS", "FAILURE", "REVOKED", "ENDED")  # a queued, running or retrying run is never deleted
DEFAULT_KEEP_DAYS = 30
KEEP_DAYS_MAX = 36500
BATCH_ROWS = 5000  # short write transactions: workers keep recording runs between batches


def check_states(states):
    """Only finished states may be deleted; ValidationError names the others."""
    states = tuple(dict.fromkeys(s.upper() for s in states))
    bad = [s for s in states if s not in FINISHED_STATES]
    if bad or not states:
        raise ValidationError("states", f"only finished runs can be deleted: choose among {', '.join(FINISHED_STATES)}"
                                        + (f" (not {', '.join(bad)})" if bad else ""))
    return states


def check_days(days, field="days"):
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= KEEP_DAYS_MAX:
        raise ValidationError(field, f"must be a whole number of days from 0 to {KEEP_DAYS_MAX}")
    return days


def _matching(states, before, task=None):
    terms = [Run.state.in_(states), Run.queued_at < before]
    if task:
        terms.append(Run.task_name == task)
    return terms


def count(states, before, task=None):
    """How many runs a delete would remove (the dry run)."""
    total = db.session.scalar(select(func.count()).select_from(Run).where(*_matching(states, before, task)))
    db.session.rollback()
    return total


def delete_finished(states, before, task=None):
    """Delete finished runs queued before `before`; commits every batch, returns how many went."""
    states = check_states(states)
    removed = 0
    while True:
        ids = select(Run.id).where(*_matching(states, before, task)).limit(BATCH_ROWS).scalar_subquery()
        gone = db.session.execute(delete(Run).where(Run.id.in_(ids))
                                  .execution_options(synchronize_session=False)).rowcount
        db.session.commit()
        removed += gone
        if gone < BATCH_ROWS:
            break
    log.info("deleted %d run(s) in %s queued before %s%s", removed, states, before, f" of {task}" if task else "")
    return removed


def cleanup(days=DEFAULT_KEEP_DAYS, include_failures=False, dry_run=False):
    """The retention policy: successful runs older than `days` go; failures stay unless asked."""
    states = FINISHED_STATES if include_failures else ("SUCCESS",)
    before = utcnow() - timedelta(days=check_days(days))
    removed = count(states, before) if dry_run else delete_finished(states, before)
    return {"deleted": 0 if dry_run else removed, "would_delete": removed if dry_run else None,
            "states": list(states), "before": iso(before), "dry_run": dry_run}
