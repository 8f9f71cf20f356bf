"""The audit log: append-only records of every control action and every login."""
import logging
from datetime import timedelta

from sqlalchemy import func, select

from models import AuditEvent, db, iso
from panel.security import clock

log = logging.getLogger("panel.audit")
LOGIN = "login"
PAGE_SIZE_MAX = 500


def record(actor, source, action, target, outcome, detail=""):
    """Append one event in its own transaction; an audit failure is logged loudly, never hidden."""
    try:
        db.session.add(AuditEvent(at=clock.now(), actor=actor or "anonymous", source=source or "", action=action,
                                  target=(target or "")[:255], outcome=outcome, detail=detail or ""))
        db.session.commit()
    except Exception:
        db.session.rollback()
        log.exception("could not write the audit event %s %s %s", actor, action, target)


def _logins(query, window_s, actor, source, outcome, target=None):
    query = query.where(AuditEvent.action == LOGIN, AuditEvent.outcome == outcome,
                        AuditEvent.at >= clock.now() - timedelta(seconds=window_s))
    for column, value in ((AuditEvent.actor, actor), (AuditEvent.source, source), (AuditEvent.target, target)):
        if value is not None:
            query = query.where(column == value)
    return query


def recent_failures(window_s, actor=None, source=None, target=None):
    """Failed logins in the last window for an account, an address, a target (a known device) or several.

    Only wrong passwords count (outcome "failure"): attempts refused by the rate limit are "denied" and do not."""
    return db.session.scalar(_logins(select(func.count()).select_from(AuditEvent), window_s, actor, source, "failure",
                                     target))


def failure_times(window_s, limit, actor=None, source=None, target=None):
    """When the last `limit` failed logins in the window happened, newest first."""
    query = _logins(select(AuditEvent.at), window_s, actor, source, "failure", target)
    return db.session.scalars(query.order_by(AuditEvent.at.desc()).limit(limit)).all()


def succeeded_lately(window_s, actor, source):
    """Whether this account logged in from this address in the window."""
    query = _logins(select(AuditEvent.id), window_s, actor, source, "success")
    return db.session.scalar(query.limit(1)) is not None


def events(limit=100, before_id=None, actor=None, action=None):
    """Newest first, keyset-paged by id."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(min(max(limit, 1), PAGE_SIZE_MAX))
    if before_id:
        query = query.where(AuditEvent.id < before_id)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if action:
        query = query.where(AuditEvent.action == action)
    return db.session.scalars(query).all()


def as_dict(event):
    return {"id": event.id, "at": iso(event.at), "actor": event.actor, "source": event.source,
            "action": event.action, "target": event.target, "outcome": event.outcome, "detail": event.detail}
