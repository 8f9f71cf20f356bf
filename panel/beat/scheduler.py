"""Beat's scheduler reading the database (after django-celery-beat's schedulers.py), sending each due run once.

Any number of these may run (a second Beat by hand, the panel's own while a project is attached, two panels
during a deploy): each due run is claimed in the database before it is sent (panel/beat/claims.py), and the
Beat whose insert lands sends it. When one dies the others send the next due run on time; there is no lock
to wait out.
"""
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from celery.beat import Scheduler
from celery.utils.log import get_logger
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from models import MARKER_ID, Schedule, ScheduleChange, utcnow
from panel.beat import claims, due, housekeeping
from panel.beat.schedules import schedule_of
from panel.database import reader
from panel.errors import BrokerDown, ValidationError
from panel.runlog import recorder
from panel.target import EMBEDDED_BEAT_READY, Target

logger = get_logger(__name__)
MARKER_CHECK_S = 1.0
GRACE_S = 10.0         # a run this late was missed (no Beat claimed it in time): its catch-up policy decides
RETRY_S = 1.0          # after a failed send or a database error: try again soon
STALE_CHECK_S = 5.0
PRUNE_EVERY_S = 3600.0
tasks_t = Schedule.__table__
marker_t = ScheduleChange.__table__


def aware(value):
    return value.replace(tzinfo=timezone.utc) if value is not None else None


@dataclass
class Entry:
    """One enabled schedule as Beat sends it, and the newest due time handled (by any Beat)."""

    id: int
    name: str
    task: str
    args: list
    kwargs: dict
    catch_up: str
    schedule: object
    base: datetime


class DatabaseScheduler(Scheduler):
    """Entries come from enabled rows; an edit is seen through the change marker within seconds."""

    def __init__(self, app, *args, **kwargs):
        self._entries, self._marker, self._marker_checked = {}, None, 0.0
        self._engine, self._checked_stale, self._pruned = None, 0.0, 0.0
        self._unmarked = []  # (schedule id, due, celery id) sent while the database could not note it
        self._by_name = not Target.of(app.flask_app.config).embedded
        self.started_at = datetime.now(timezone.utc)
        self.me = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        super().__init__(app, *args, **kwargs)
        self.max_interval = min(self.max_interval, float(app.conf.beat_max_loop_interval or 5))

    # -- loading ------------------------------------------------------------------------------
    def setup_schedule(self):
        self._engine = recorder._engine
        self.app.loader.import_default_modules()
        self._reload()
        # Runs due before this moment were missed by this Beat: their schedule's catch-up decides.
        logger.info("%s (%d enabled tasks; claims in the database, beat id %s, started %s)", EMBEDDED_BEAT_READY,
                    len(self._entries), self.me, self.started_at.isoformat())

    def _read_marker(self):
        with reader(self._engine).connect() as conn:
            return conn.execute(select(marker_t.c.version).where(marker_t.c.id == MARKER_ID)).scalar() or 0

    def _reload(self):
        """Read enabled rows and their last claims; a DB error keeps the last good schedule, a bad row is disabled."""
        try:
            marker = self._read_marker()
            with reader(self._engine).connect() as conn:
                rows = conn.execute(select(tasks_t).where(tasks_t.c.enabled.is_(True))).all()
            bases = claims.bases(self._engine)
        except SQLAlchemyError as exc:
            logger.error("DatabaseScheduler: database error, keeping the last good schedule: %s", exc)
            return False
        entries, bad = {}, []
        for row in rows:
            try:
                entries[row.id] = self._entry(row, bases.get(row.id))
            except (ValidationError, ValueError, TypeError) as exc:
                bad.append((row, str(exc)))
        for row, reason in bad:
            logger.error("DatabaseScheduler: disabling task %r: %s", row.name, reason)
            self._write(update(tasks_t).where(tasks_t.c.id == row.id).values(enabled=False, disabled_reason=reason))
        self._entries, self._marker = entries, marker
        self._write_next_runs(entries.values(), datetime.now(timezone.utc))
        return True

    def _entry(self, row, last_claimed):
        # Your project's task types are not imported here: sent by name (checked against its workers when saved).
        known = not row.task.startswith("celery.") if self._by_name else row.task in self.app.tasks
        if not known:
            raise ValidationError("task", f"{row.task!r} is not a registered Celery task")
        anchor = aware(row.anchored_at or row.last_run_at or row.created_at or utcnow())
        base = max(anchor, aware(last_claimed)) if last_claimed else anchor
        return Entry(id=row.id, name=row.name, task=row.task, args=list(row.args or []), kwargs=dict(row.kwargs or {}),
                     catch_up=row.catch_up or "once", schedule=schedule_of(row, self.app), base=base)

    def _write(self, *statements):
        try:
            with self._engine.begin() as conn:
                for statement in statements:
                    conn.execute(statement)
        except SQLAlchemyError as exc:
            logger.error("DatabaseScheduler: could not write to the database: %s", exc)

    def _write_next_runs(self, entries, now):
        self._write(*[update(tasks_t).where(tasks_t.c.id == e.id).values(
            next_run_at=due.next_after(e.schedule, e.base, now).replace(tzinfo=None)) for e in entries])

    # -- the schedule Celery reads ------------------------------------------------------------
    @property
    def schedule(self):
        """The enabled schedules by name (Celery's own beat reads this for its logs)."""
        return {e.name: e for e in self._entries.values()}

    def _maybe_reload(self):
        now = time.monotonic()
        if now - self._marker_checked < MARKER_CHECK_S:
            return
        self._marker_checked = now
        try:
            changed = self._read_marker() != self._marker
        except SQLAlchemyError as exc:
            logger.error("DatabaseScheduler: cannot read the change marker, keeping the schedule: %s", exc)
            return
        if changed:
            logger.info("DatabaseScheduler: schedule changed, reloading")
            self._reload()

    def tick(self, *args, **kwargs):
        """Claim and send what is due; returns the seconds until the next due run (or a retry)."""
        self._maybe_reload()
        now = datetime.now(timezone.utc)
        try:
            self._note_unmarked()
            retry = any([self._due_runs(entry, now) for entry in list(self._entries.values())])
            retry = self._stale_runs() or retry
            self._prune()
        except SQLAlchemyError as exc:
            logger.error("DatabaseScheduler: cannot claim due runs, so nothing is sent until the database "
                         "answers (the runs are owed, not lost): %s", exc)
            return RETRY_S
        if retry:
            return RETRY_S
        waits = [(due.next_after(e.schedule, e.base, now) - now).total_seconds() for e in self._entries.values()]
        return max(0.0, min([self.max_interval] + waits))

    def _due_runs(self, entry, now):
        """This entry's due runs, each sent by the Beat whose claim lands; True when a send must be retried."""
        decided = due.plan(entry.schedule, entry.catch_up, entry.base, now, self.started_at, GRACE_S)
        if decided.skip is not None:
            if claims.take(self._engine, entry.id, decided.skip, self.me, outcome="skipped"):
                logger.warning("DatabaseScheduler: %r: runs missed up to %s skipped (catch-up: skip)", entry.name,
                               decided.skip.isoformat())
            entry.base = max(entry.base, decided.skip)
        if decided.dropped:
            logger.warning("DatabaseScheduler: %r: %d older missed runs not sent (catch-up: all sends at most %d)",
                           entry.name, decided.dropped, due.CATCH_UP_MAX)
        sent_any = False
        for due_at in decided.send:
            if claims.take(self._engine, entry.id, due_at, self.me):
                if not self._send(entry, due_at):
                    return True
                sent_any = True
            entry.base = max(entry.base, due_at)  # sent here, or by the Beat whose claim landed first
        if sent_any:
            self._write_next_runs([entry], now)
        return False

    def _send(self, entry, due_at):
        """Send one claimed run; a failed send gives the claim back, so the run is owed again."""
        headers = {recorder.SCHEDULE_HEADER: entry.id, "celery_beat_task": True}
        logger.info("Scheduler: Sending due task %s (%s), due %s", entry.name, entry.task, due_at.isoformat())
        try:
            result = housekeeping.send(self.app, entry.task, entry.args, entry.kwargs, headers)
        except BrokerDown as exc:
            logger.error("DatabaseScheduler: could not send %r (due %s), trying again: %s", entry.name,
                         due_at.isoformat(), exc)
            claims.release(self._engine, entry.id, due_at)
            return False
        try:
            claims.sent(self._engine, entry.id, due_at, result.id)
        except SQLAlchemyError:  # it went out: note it as soon as the database answers, or it would be sent again
            self._unmarked.append((entry.id, due_at, result.id))
            raise
        return True

    def _note_unmarked(self):
        while self._unmarked:
            claims.sent(self._engine, *self._unmarked[0])
            self._unmarked.pop(0)

    def _stale_runs(self):
        """Runs another Beat claimed and died before sending: this one sends them."""
        if time.monotonic() - self._checked_stale < STALE_CHECK_S:
            return False
        self._checked_stale = time.monotonic()
        retry = False
        for schedule_id, due_at in claims.take_over_stale(self._engine, self.me):
            entry = self._entries.get(schedule_id)
            if entry is None:
                claims.release(self._engine, schedule_id, aware(due_at))  # disabled or deleted meanwhile
                continue
            logger.warning("DatabaseScheduler: %r due %s was claimed and never sent: sending it", entry.name, due_at)
            retry = not self._send(entry, aware(due_at)) or retry
        return retry

    def _prune(self):
        if time.monotonic() - self._pruned >= PRUNE_EVERY_S:
            self._pruned = time.monotonic()
            claims.prune(self._engine)

    def sync(self):
        """Run bookkeeping is written as each message is sent; nothing is batched here."""

    @property
    def info(self):
        return f"    . db -> panel database (change marker; each due run claimed once, beat id {self.me})"
