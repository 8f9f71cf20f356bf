"""The panel's background duties (reconciler, cluster monitor, run tally folds, watchdog, alert checks; with a project
attached, the run log from events and the panel's schedules), run by one process.

Under gunicorn every worker process calls start(); a file lock in the instance folder picks one of
them to act, and the others stand by and take over within STANDBY_S if that one dies (the kernel
drops a dead process's lock). So only one watchdog ever starts a process, however many workers serve.
"""
import fcntl
import logging
import os
import threading
import time
from pathlib import Path

from models import db
from panel.beat import in_panel
from panel.cluster import monitor
from panel.runlog import from_events, reconciler, tally

log = logging.getLogger("panel.background")
STANDBY_S = 2.0
_alive = set()  # every started handle, so the lock file stays open however the caller keeps (or drops) it


class Background:
    """A handle on this process's part: acting, or standing by; stop() ends both."""

    def __init__(self, app):
        self.app = app
        self.stop_event = threading.Event()
        self.acting = threading.Event()
        self.listening = threading.Event()  # the run log from events consumes (set at once without it)
        self.path = Path(app.config["INSTANCE_PATH"]) / "run" / "background.lock"
        self._fh = None
        self._stops = []
        self._turn = threading.Lock()  # a stop() that comes while _act starts the duties waits, then stops them all
        self.tries = 0  # how often it tried for the lock (a standby keeps trying)

    def _try_lock(self):
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._fh = fh  # held open for as long as this process acts
        return True

    def _wait_for_turn(self):
        while not self.stop_event.is_set():
            self.tries += 1
            if self._try_lock():
                self._act()
                return
            self.stop_event.wait(STANDBY_S)

    def _act(self):
        with self._turn:
            if self.stop_event.is_set():  # stopped while it waited for the lock: start nothing
                self._release()
                return
            log.info("background duties: this process (pid %s) acts", os.getpid())
            # The start-up settle of open runs waits until the run log from events listens.
            self._stops = [reconciler.start(self.app, listening=self.listening), monitor.start(self.app),
                           tally.start(self.app)]
            if from_events.enabled(self.app.config):
                self._stops.append(from_events.start(self.app, on_listening=self.listening.set))
            else:
                self.listening.set()
            if in_panel.enabled(self.app.config):
                self._stops.append(in_panel.start(self.app))
            threading.Thread(target=watch_loop, args=(self.app, self.stop_event), name="watchdog",
                             daemon=True).start()
            self.acting.set()  # last: whoever waits for it may stop() at once, and every duty is in _stops

    def start(self):
        _alive.add(self)
        threading.Thread(target=self._wait_for_turn, name="background-standby", daemon=True).start()
        return self

    def stop(self):
        self.stop_event.set()
        _alive.discard(self)
        with self._turn:
            for stop in self._stops:
                stop.set()
            self._release()
            self.acting.clear()

    def _release(self):
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def actor_pid(instance_path):
    """The pid of the panel process that acts now, or None when none holds the lock."""
    path = Path(instance_path) / "run" / "background.lock"
    try:
        with open(path, "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                text = fh.read().strip()
                return int(text) if text.isdigit() else None
            fcntl.flock(fh, fcntl.LOCK_UN)
            return None
    except OSError:
        return None


def watch_loop(app, stop):
    """Each WATCHDOG_INTERVAL_S: kept run-log writes, then the watchdog; the alert checks every
    ALERT_CHECK_INTERVAL_S."""
    from panel.health import alerts
    from panel.runlog import recorder
    from panel.supervision import follow, watchdog
    with app.app_context():
        dogs = [follow.Follower(app)]  # what Supervisor keeps: this host's (PROCESS_MANAGER=supervisor), the pane's
        if app.config["PROCESS_MANAGER"] == "panel":  # else Supervisor restarts them: the watchdog stands down
            dogs.append(watchdog.Watchdogs(app))
            watchdog.apply_configured(app.config)
        db.session.remove()
    checked = 0.0
    while not stop.wait(app.config["WATCHDOG_INTERVAL_S"]):
        with app.app_context():
            try:
                recorder.replay_spool()  # run-log writes the database refused earlier, in order
                for dog in dogs:
                    dog.tick()
                if time.monotonic() - checked >= app.config["ALERT_CHECK_INTERVAL_S"]:
                    checked = time.monotonic()
                    alerts.run_checks(app.config)
            except Exception:  # the database or the broker may be away for a while: keep watching
                log.exception("watchdog tick failed; trying again")
            finally:
                db.session.remove()
                app.extensions["watchdog_ticks"] = app.extensions.get("watchdog_ticks", 0) + 1  # a pulse to watch


def start(app):
    """Start this process's part in the background duties; returns the handle."""
    return Background(app).start()
