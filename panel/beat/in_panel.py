"""With your own project attached, the panel sends the schedules it keeps: its background process runs the
DatabaseScheduler (the same one the embedded Beat runs), since the project's Beat keeps the project's own schedule.

Each due run is claimed in the database first, so an embedded Beat started by hand beside it never sends one twice.
"""
import logging
import threading

from models import Watchdog, db
from panel.beat.scheduler import DatabaseScheduler
from panel.database import reader
from panel.host.processes import BEAT
from panel.target import Target

log = logging.getLogger("panel.in_panel_beat")
RETRY_MIN_S, RETRY_MAX_S = 1.0, 30.0
PAUSED_CHECK_S = 1.0


def enabled(config):
    """On while a project is attached (the embedded app's own Beat sends them otherwise)."""
    return not Target.of(config).embedded


def run(app, stop):
    """The thread's body: tick the scheduler until stopped; on a failure start it afresh after a bounded backoff."""
    celery, scheduler, delay = app.extensions["celery"], None, RETRY_MIN_S
    with app.app_context():
        engine = db.engine
    while not stop.is_set():
        try:
            if paused(engine):
                stop.wait(PAUSED_CHECK_S)
                continue
            if scheduler is None:
                scheduler = DatabaseScheduler(app=celery)
            stop.wait(scheduler.tick() or scheduler.max_interval)
            delay = RETRY_MIN_S
        except Exception as exc:  # the database or the broker went away: both come back
            log.warning("the panel's schedules: %s; trying again in %.0f s", exc, delay)
            scheduler = _closed(scheduler)
            stop.wait(delay)
            delay = min(delay * 2, RETRY_MAX_S)
    _closed(scheduler)


def paused(engine):
    """Stop Celery (or Beat's stop) in the panel pauses the panel's schedules too, as it stops the embedded Beat."""
    with reader(engine).connect() as conn:
        return Watchdog.meant_stopped(conn, BEAT)


def _closed(scheduler):
    if scheduler is not None:
        try:
            scheduler.close()
        except Exception as exc:  # closing is best effort: an unsent claim is taken over by the next Beat
            log.warning("the panel's schedules: closing: %s", exc)
    return None


def start(app):
    """Start sending in a thread; set the returned event to stop it."""
    stop = threading.Event()
    threading.Thread(target=run, args=(app, stop), name="panel-beat", daemon=True).start()
    return stop
