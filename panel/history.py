"""Process history: what the panel did to the worker and Beat, kept in the database."""
import logging
from contextlib import nullcontext

from flask import has_app_context

from models import ProcessEvent, db

log = logging.getLogger("panel.history")


def recorder_for(app):
    """A callback for the supervisor that writes one row per action; failures are only logged."""
    def record(program, action, outcome, pids, message):
        try:  # the caller's session when there is one: a second one would wait for the first's lock
            with nullcontext() if has_app_context() else app.app_context():
                db.session.add(ProcessEvent(program=program, action=action, outcome=outcome,
                                            pids=list(pids), message=message))
                db.session.commit()
        except Exception:
            log.exception("could not record a process event")
    return record
