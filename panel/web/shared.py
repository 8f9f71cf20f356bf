"""The status snapshot: what the status routes read (process table, hosts) computed once per STATUS_SHARE_S per
process and shared by every request in that time; any control action through the panel drops it at once.

Pollers by the dozen ask the same question many times a second; one of them reads the process table and the others
wait for that answer instead of scanning /proc each. "At once" holds across the panel's processes too: a POST
bumps a change marker of the instance (panel.host.changes), and every request compares its count (one stat) with the
count the snapshot was taken at, so a start through one gunicorn worker is seen by the next poll of any other.
"""
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from flask import current_app, g, request, request_finished

from models import iso
from panel.host.changes import ChangeMarker

UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
_made = threading.Lock()  # one Share per app, even when its first requests arrive together


@dataclass(frozen=True)
class Snapshot:
    value: object
    taken: float  # the clock when the computation began: its age counts from the oldest thing it read
    as_of: str  # the same moment, ISO 8601 UTC, for the answer
    changes: int  # the marker's count then: a control action since makes it stale
    max_age_s: float

    def headers(self):
        """How old the answer may be, also for routes whose body is fixed by their contract."""
        return {"X-Status-As-Of": self.as_of, "X-Status-Max-Age-S": f"{self.max_age_s:g}"}


class Share:
    """Snapshots by name, each computed by one thread while the others wait for it; never older than max_age_s."""

    def __init__(self, max_age_s, marker=None, clock=time.monotonic, wall=lambda: datetime.now(timezone.utc)):
        self.max_age_s = max_age_s
        self.marker = marker
        self.clock, self.wall = clock, wall
        self.computed = 0  # how many times a snapshot was computed (the tests count them)
        self._state = threading.Lock()
        self._computing = {}  # name -> the lock its computing thread holds
        self._snapshots = {}  # name -> Snapshot

    def _changes(self):
        return self.marker.count() if self.marker else 0

    def _fresh(self, name, changes):
        snap = self._snapshots.get(name)
        if snap is not None and snap.changes == changes and self.clock() - snap.taken < self.max_age_s:
            return snap
        return None

    def get(self, name, compute):
        """The snapshot `name`, computed by `compute()` unless a fresh one is there or another thread makes it."""
        changes = self._changes()
        snap = self._fresh(name, changes)
        if snap is not None:
            return snap
        with self._state:
            computing = self._computing.setdefault(name, threading.Lock())
        with computing:
            changes = self._changes()
            snap = self._fresh(name, changes)  # made by the thread this one waited for
            if snap is not None:
                return snap
            taken, as_of = self.clock(), iso(self.wall())
            snap = Snapshot(compute(), taken, as_of, changes, self.max_age_s)
            with self._state:
                self.computed += 1
                if self.max_age_s > 0:
                    self._snapshots[name] = snap
            return snap

    def drop(self):
        """Forget every snapshot here, and tell the other processes of this instance to forget theirs."""
        with self._state:
            self._snapshots.clear()
        if self.marker:
            self.marker.bump()


def share(app=None):
    """This app's Share (one per app: the tests run several apps in one process)."""
    app = app or current_app
    found = app.extensions.get("status_share")
    if found is None:
        with _made:
            found = app.extensions.get("status_share")
            if found is None:
                marker = ChangeMarker(app.config["INSTANCE_PATH"], "status")
                found = app.extensions["status_share"] = Share(float(app.config["STATUS_SHARE_S"]), marker)
    return found


def snapshot(name, compute):
    return share().get(name, compute)


def _drop_after_action(app, response, **_):
    """Any state change asked by someone known: its answer goes out only after the snapshots are dropped."""
    if request.method in UNSAFE_METHODS and g.get("identity") is not None and "STATUS_SHARE_S" in app.config:
        share(app).drop()


request_finished.connect(_drop_after_action)
