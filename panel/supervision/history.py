"""The restart history: what happened to the worker and Beat, who did it and why, kept in the database."""
import logging
from contextlib import nullcontext

from flask import g, has_app_context, has_request_context
from sqlalchemy import select

from models import ProcessEvent, db, iso

log = logging.getLogger("panel.history")
PAGE_SIZE_MAX = 500


def _who(actor):
    """The person behind a request, else the caller's name for itself (watchdog, cli), else "system"."""
    if actor:
        return actor
    if has_request_context() and g.get("identity") is not None:
        return g.identity.username
    return "system"


def recorder_for(app):
    """A callback for the supervisor that writes one row per action; failures are only logged."""
    def record(program, action, outcome, pids, message, cause="request", actor=None, exit_status=None, host=None):
        try:  # the caller's session when there is one: a second one would wait for the first's lock
            with nullcontext() if has_app_context() else app.app_context():
                try:
                    db.session.add(ProcessEvent(program=program, action=action, outcome=outcome, pids=list(pids),
                                                message=message, cause=cause, actor=_who(actor)[:80],
                                                exit_status=exit_status, host=host))
                    db.session.commit()
                except Exception:  # the caller's session must stay usable for what it writes next
                    db.session.rollback()
                    raise
        except Exception:  # the action goes on
            log.exception("could not record a process event")
    return record


def intent_for(app):
    """A callback for the supervisor: a start or stop through the panel sets what the watchdog keeps."""
    def intent(kind, desired, pids=None):
        from panel.supervision import watchdog
        try:
            with nullcontext() if has_app_context() else app.app_context():
                watchdog.note_intent(kind, desired, pids)
        except Exception:  # the action goes on; a stale intent only matters with the watchdog on
            log.exception("could not record that %s should be %s", kind, desired)
    return intent


def events(limit=50, before=None, program=None):
    """The history, newest first; `before` (an id) pages back."""
    query = select(ProcessEvent).order_by(ProcessEvent.id.desc()).limit(min(max(limit, 1), PAGE_SIZE_MAX))
    if before is not None:
        query = query.where(ProcessEvent.id < before)
    if program:
        query = query.where(ProcessEvent.program == program)
    found = db.session.scalars(query).all()
    db.session.rollback()
    return found


def as_dict(event):
    return {"id": event.id, "at": iso(event.at), "program": event.program, "action": event.action,
            "outcome": event.outcome, "pids": event.pids or [], "message": event.message, "cause": event.cause,
            "actor": event.actor, "exit_status": event.exit_status, "host": event.host}
