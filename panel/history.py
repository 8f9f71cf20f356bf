"""Process history: what the panel did to the worker and Beat, kept in the database."""
import logging

from models import ProcessEvent, db

log = logging.getLogger("panel.history")


def recorder_for(app):
    """A callback for the supervisor that writes one row per action; failures are only logged."""
    def record(program, action, outcome, pids, message):
        try:
            with app.app_context():
                db.session.add(ProcessEvent(program=program, action=action, outcome=outcome,
                                            pids=list(pids), message=message))
                db.session.commit()
        except Exception:
            log.exception("could not record a process event")
    return record
