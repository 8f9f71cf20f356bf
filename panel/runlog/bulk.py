"""Acting on every run a filter matches at once: retry, revoke, cancel or delete; counted first, capped."""
import logging
from dataclasses import dataclass, field
from functools import partial

from sqlalchemy import delete, func, select

from models import COMPLETED, FAILED, PENDING, RUNNING, UNKNOWN, Run, db, utcnow
from panel.broker import remote
from panel.cluster import workers
from panel.errors import ConflictError, ValidationError
from panel.runlog import cancel, outcomes, retry, search

log = logging.getLogger("panel.bulk")
REVOKE_BATCH = 1_000  # ids per revoke message: Celery's revoke takes a list; this keeps each message small
ANSWER_TIMEOUT_S = 1.0  # a discovery ping waits this long for the workers to answer
ANSWER_PER_BATCH_S = 0.5  # a worker takes about this long to file 1,000 revoked ids (bench/bulk_actions.py)
DELETE_BATCH = 5_000  # rows per delete transaction: workers keep recording between batches
ACTIONS = ("retry", "revoke", "cancel", "delete")
# Which runs each action applies to, by status: revoke is for queued runs (and runs waiting for a retry);
# cancel also stops running ones; retry and delete take only ended runs (retry only those retry.refusal lets go:
# not a quarantined message, nor arguments over a send's limits).
APPLIES_TO = {"retry": (COMPLETED, FAILED, UNKNOWN), "revoke": (PENDING,), "cancel": (PENDING, RUNNING),
              "delete": (COMPLETED, FAILED, UNKNOWN)}
NARROW = "narrow it with status, task, worker, since and until, or q, and act on each part"


@dataclass
class Outcome:
    """What a bulk action found and did."""

    matched: int
    applies: int
    done: int = 0
    new_ids: list = field(default_factory=list)
    acknowledged_by: list = field(default_factory=list)
    confirm: object = None  # revoke: () -> the workers that took the revokes; asked now, or later off the request
    not_confirmed: list = field(default_factory=list)
    failed: list = field(default_factory=list)  # (celery task id, why) of runs it could not act on


def _terms(flt, ids):
    terms = search.conditions(search.resolved(flt, db.session.connection()))
    if ids is not None:
        terms.append(Run.celery_task_id.in_(sorted(set(ids))))
    return terms


def count(flt, ids, action, cap):
    """(matched, how many the action applies to); 400 naming `filter` over the cap, or a delete of open runs."""
    by_status = dict(db.session.execute(select(Run.status, func.count()).where(*_terms(flt, ids))
                                        .group_by(Run.status)).all())
    db.session.rollback()
    matched = sum(by_status.values())
    if matched > cap:
        raise ValidationError("filter", f"matches {matched:,} runs, more than the {cap:,} one bulk action takes "
                                        f"(BULK_MAX_RUNS): {NARROW}")
    still_open = by_status.get(PENDING, 0) + by_status.get(RUNNING, 0)
    if action == "delete" and still_open:
        raise ValidationError("filter", f"matches {still_open:,} run(s) still queued, running or waiting for a "
                                        "retry, and only finished runs can be deleted: add "
                                        "status=SUCCESS,FAILURE,REVOKED to the filter")
    return matched, sum(n for status, n in by_status.items() if status in APPLIES_TO[action])


def _rows(flt, ids, action, *columns):
    rows = db.session.execute(select(*columns).where(*_terms(flt, ids), Run.status.in_(APPLIES_TO[action]))
                              .order_by(Run.id)).all()
    db.session.rollback()  # hold nothing while the broker and the workers are asked
    return rows


def act(celery, host, flt, ids, action, who, cap, dry_run=False):
    """Count, then (unless a dry run) do `action` to every matched run it applies to."""
    matched, applies = count(flt, ids, action, cap)
    outcome = Outcome(matched, applies)
    sendable = []
    if action == "retry" and applies:  # a dry run decides which can be sent again exactly as the real run does
        sendable = _sendable(celery, outcome, _rows(flt, ids, action, Run.celery_task_id, Run.task_name, Run.status,
                                                    Run.state, Run.args, Run.kwargs))
        outcome.applies = applies = len(sendable)
    if dry_run or not applies:
        return outcome
    if action == "delete":
        _delete(outcome, [r.id for r in _rows(flt, ids, action, Run.id)])
    elif action == "revoke":
        _revoke(celery, outcome, [r.celery_task_id for r in _rows(flt, ids, action, Run.celery_task_id)], who)
    elif action == "cancel":
        _cancel(celery, host, outcome, _rows(flt, ids, action, Run.celery_task_id, Run.status, Run.worker))
    else:
        _retry(celery, outcome, sendable)
    log.info("bulk %s by %s: %d matched, %d applied to, %d done", action, who, matched, applies, outcome.done)
    return outcome


def _online(celery, batches=0):
    """The workers that answer now (those the cluster monitor sees online asked by name, else a discovery ping);
    a worker still working through `batches` revoke messages before the ping is given time to, within a bound."""
    now = utcnow()
    known = [row.name for row in workers.rows() if workers.is_online(row, now)]
    db.session.rollback()
    return remote.answering(celery, known, ANSWER_TIMEOUT_S + ANSWER_PER_BATCH_S * batches)


def _revoke(celery, outcome, task_ids, who):
    """Take the waiting messages out, broadcast the revokes in batches, end the rows: sent and durable.

    Which workers took them is `outcome.confirm()`, a ping after the revokes: a worker handles its control messages
    in order, so one that answers holds them. It waits for every worker to file all the ids (about 0.5 s a 1,000),
    so the caller asks it now or after answering. Messages still waiting in a Redis queue are taken out first: no
    worker started later can run them.
    """
    cancel.take_out(celery, task_ids)
    for start in range(0, len(task_ids), REVOKE_BATCH):
        remote.revoke(celery, task_ids[start:start + REVOKE_BATCH])
    outcome.done = outcomes.end(task_ids, outcomes.revoked(who)).runs
    outcome.confirm = partial(_online, celery, batches=-(-len(task_ids) // REVOKE_BATCH))


def _cancel(celery, host, outcome, rows):
    done = cancel.cancel(celery, host, rows)
    outcome.not_confirmed = done.not_confirmed
    outcome.done = len(done.revoked_queued) + len(done.stopped) + len(done.not_confirmed)


def _delete(outcome, run_ids):
    """Delete by id in short transactions; a run reopened meanwhile (a retry that ran after all) stays."""
    for start in range(0, len(run_ids), DELETE_BATCH):
        batch = run_ids[start:start + DELETE_BATCH]
        outcome.done += db.session.execute(delete(Run).where(Run.id.in_(batch), Run.status.in_(APPLIES_TO["delete"]))
                                           .execution_options(synchronize_session=False)).rowcount
        db.session.commit()


def _sendable(celery, outcome, rows):
    """The runs retry.refusal lets go; each other one is named in `failed` with why (a dry run names them too)."""
    sendable, held = [], retry.quarantined([row.celery_task_id for row in rows])
    db.session.rollback()
    for row in rows:
        why = retry.refusal(celery, row, held)
        if why is None:
            sendable.append(row)
        else:
            outcome.failed.append((row.celery_task_id, why))
    return sendable


def _retry(celery, outcome, rows):
    """Send each run again; one that cannot go after all (its row changed meanwhile) is named in `failed`."""
    for row in rows:
        try:
            new_id, _ = retry.send_again(celery, row)
        except (ConflictError, ValidationError) as exc:  # reopened, quarantined or changed since it was counted
            outcome.failed.append((row.celery_task_id, str(exc)))
            continue
        outcome.new_ids.append(new_id)
    outcome.done = len(outcome.new_ids)
