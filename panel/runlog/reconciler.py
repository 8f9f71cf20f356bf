"""A background thread in the panel that fails runs whose worker is gone, without anyone asking."""
import logging
import threading

from panel.runlog import runs

log = logging.getLogger("panel.reconciler")
EVERY_S = 20  # a lost run is failed within about three times this (the issue asks for 60 s)


def reconcile_once(app):
    with app.app_context():
        try:
            return runs.reconcile(app.extensions["celery"])
        finally:
            runs.end_transaction()


def start(app, every_s=EVERY_S):
    """Start the loop as a daemon thread; returns its stop event."""
    stop = threading.Event()

    def loop():
        while not stop.wait(every_s):
            try:
                reconcile_once(app)
            except Exception:  # the loop must outlive a bad pass (database or broker away)
                log.exception("reconcile pass failed; trying again in %ss", every_s)

    threading.Thread(target=loop, name="run-reconciler", daemon=True).start()
    return stop
