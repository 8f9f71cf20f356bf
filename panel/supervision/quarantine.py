"""Poison messages: a message the worker dies on again and again is taken out of its queue and kept here.

A death of the worker by a message is counted against the message its main process was handing to the pool (the
first held message, in the order its log received them, that the runs say was due and never started:
panel/supervision/crashlog.py reads the log); the same message behind POISON_AFTER_DEATHS deaths is taken out of
the broker (panel/broker/messages.py), its run ends, an alert names it, and the watchdog starts the worker again.
A person can read it, delete it, or requeue it (the same bytes, to the same queue). Supervisor only gives up
(FATAL); Celery has no such place.
"""
import base64
import json
import logging

from sqlalchemy import select, update

from models import FAILED, PENDING, QUARANTINED, QuarantinedMessage, Run, db, iso, utcnow
from panel.broker import messages, queues
from panel.errors import BrokerDown, ConflictError, NotFound
from panel.health import alerts
from panel.runlog import outcomes
from panel.supervision import crashlog

log = logging.getLogger("panel.quarantine")
LOG_TAIL_BYTES = 256 * 1024  # a RecursionError's traceback is long; the "received" line is above it
SHOWN_MAX = 2000  # characters of args or kwargs shown when a kept message is read


def _ending(row):
    return outcomes.Ending("FAILURE", f"Quarantined: the worker died {row.deaths} times holding this message "
                                      f"({row.evidence}); it waits in the quarantine on the workers page", "quarantine")


def search_queues(cfg, celery):
    """Where a worker of ours takes messages from: its configured queues, Celery's default, the broker's bindings."""
    names = [q.strip() for q in (cfg.get("WORKER_QUEUES") or "").split(",") if q.strip()]
    names.append(celery.conf.task_default_queue)
    try:
        names += sorted(queues.bound(celery))
    except Exception:  # the bindings are a help, not a need: the look goes on without them
        log.warning("could not list the broker's bindings; looking in the configured queues only")
    return list(dict.fromkeys(names))


def _not_handled(task_id, now):
    """Why the run says its message was not what the main process was handing to the pool (else None): it started
    on a pool process, or it waits for its ETA or a retry's countdown in the worker's timer."""
    run = db.session.scalars(select(Run).filter_by(celery_task_id=task_id)).first()
    if run is None:
        return None
    if run.started_at is not None:
        return "it started on a pool process"
    due = max((t for t in (run.eta, run.next_retry_at) if t is not None), default=None)
    return f"it waits for its time ({iso(due)})" if due is not None and due > now else None


def _count(task_id, task, evidence, now):
    """One more death against a suspect message (made on its first); None when it is already quarantined."""
    row = db.session.scalars(select(QuarantinedMessage).filter_by(celery_task_id=task_id)).first()
    if row is None:
        row = QuarantinedMessage(celery_task_id=task_id, task_name=task[:200], deaths=0, first_seen=now)
        db.session.add(row)
    if row.state == QUARANTINED:  # the log is older than the take: nothing new
        return None
    row.deaths, row.last_seen, row.evidence = row.deaths + 1, now, evidence
    return row


def note_death(cfg, celery, log_text, exit_status=None):
    """A worker died unasked: blame the message that killed it, if one did, and give back the rest of what it held.

    `log_text`: the end of its log (LOG_TAIL_BYTES), the dead process's life last. Returns the row when a message
    was taken out of its queue by this death, else None.
    """
    died = crashlog.death(log_text, exit_status)
    if died is None:
        return None
    taken = _blame(cfg, celery, died) if died.by_message else None
    _give_back(celery, died, taken.celery_task_id if taken else None)
    return taken


def _blame(cfg, celery, died):
    """Count the death against the one message the main process was handing to the pool (the first message it held
    that was due and never started), and quarantine it once POISON_AFTER_DEATHS deaths are counted. A message the
    worker only held (waiting for its ETA, behind the one handed over, running on a pool process) is never counted.
    """
    now = utcnow()
    for task_id, task in died.held:
        if (why := _not_handled(task_id, now)) is not None:
            log.info("worker died holding message %s, not blamed: %s", task_id, why)
            continue
        row = _count(task_id, task, died.evidence, now)
        db.session.commit()
        if row is None:
            return None
        log.warning("worker died handling message %s (%s), death %d: %s", row.celery_task_id, row.task_name,
                    row.deaths, row.evidence)
        return _take(cfg, celery, row, now) if row.deaths >= cfg["POISON_AFTER_DEATHS"] else None
    return None


def _give_back(celery, died, taken_id):
    """The messages the dead worker held and never started go back to their queues now (Redis keeps them aside
    until its visibility timeout, an hour, when a worker dies without restoring them: a SIGKILL, a crash)."""
    started = set(db.session.scalars(select(Run.celery_task_id).where(
        Run.celery_task_id.in_([task_id for task_id, _ in died.held]), Run.started_at.is_not(None))))
    ids = [task_id for task_id, _ in died.held if task_id != taken_id and task_id not in started]
    try:
        back = messages.give_back(celery, ids)
    except BrokerDown as exc:
        log.warning("could not give the dead worker's messages back to their queues: %s", exc)
        return
    if back:
        log.info("gave %d message(s) the dead worker held back to their queues: %s", len(back), ", ".join(back))


def _take(cfg, celery, row, now):
    """Out of the broker into the quarantine; its run ends; an alert names it."""
    envelope = messages.take(celery, row.celery_task_id, search_queues(cfg, celery))
    if envelope is None:
        log.warning("message %s is in no queue and not in the unacknowledged set: nothing to quarantine",
                    row.celery_task_id)
        return None
    row.state, row.queue, row.envelope, row.quarantined_at = QUARANTINED, envelope.queue, envelope.as_dict(), now
    db.session.commit()  # kept before anything else: the message now lives only here
    outcomes.end([row.celery_task_id], _ending(row))
    alerts.message_quarantined(cfg, row.celery_task_id, row.task_name, row.queue, row.deaths, row.evidence)
    return row


def _row(celery_task_id):
    row = db.session.scalars(select(QuarantinedMessage).filter_by(celery_task_id=celery_task_id,
                                                                  state=QUARANTINED)).first()
    if row is None:
        raise NotFound(f"no quarantined message with task id {celery_task_id}")
    return row


def _clip(value):
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= SHOWN_MAX else text[:SHOWN_MAX] + f"… ({len(text)} characters)"


def _content(row):
    """Args and kwargs read from the kept body (JSON messages; other serializers are shown as they are)."""
    envelope = row.envelope or {}
    raw = base64.b64decode(envelope.get("body_b64") or b"")
    if envelope.get("content_type") != "application/json":
        return {"args": f"({envelope.get('content_type')}, {len(raw)} bytes)", "kwargs": ""}
    try:
        args, kwargs, _embed = json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        return {"args": raw[:SHOWN_MAX].decode("utf-8", "replace"), "kwargs": ""}
    return {"args": _clip(args), "kwargs": _clip(kwargs)}


def as_dict(row, content=False):
    out = {"celery_task_id": row.celery_task_id, "task_name": row.task_name, "queue": row.queue,
           "deaths": row.deaths, "evidence": row.evidence, "first_seen": iso(row.first_seen),
           "quarantined_at": iso(row.quarantined_at),
           "size": len(base64.b64decode((row.envelope or {}).get("body_b64") or b""))}
    if content:
        out.update(_content(row), headers={k: v for k, v in ((row.envelope or {}).get("headers") or {}).items()
                                           if k in ("task", "id", "retries", "eta", "expires", "origin")})
    return out


def kept():
    """Every quarantined message, newest first."""
    return db.session.scalars(select(QuarantinedMessage).filter_by(state=QUARANTINED)
                              .order_by(QuarantinedMessage.quarantined_at.desc())).all()


def get(celery_task_id):
    return _row(celery_task_id)


def delete(celery_task_id):
    """Drop a kept message for good; its run stays ended."""
    row = _row(celery_task_id)
    db.session.delete(row)
    db.session.commit()
    return row


def requeue(celery, celery_task_id):
    """Publish the kept message again to its queue, reopen its run as queued, and forget the quarantine."""
    row = _row(celery_task_id)
    if not row.envelope:
        raise ConflictError(f"message {celery_task_id} was kept without its body; it cannot be requeued")
    messages.publish(celery, messages.Envelope(**row.envelope))  # BrokerDown leaves the row: nothing lost
    db.session.execute(update(Run).where(Run.celery_task_id == celery_task_id, Run.status == FAILED)
                       .values(status=PENDING, state="PENDING", finished_at=None, runtime_s=None, error=None))
    db.session.delete(row)
    db.session.commit()
    return row
