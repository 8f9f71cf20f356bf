"""Beat's scheduler reading the database (after django-celery-beat's schedulers.py)."""
import json
import time
from datetime import timedelta, timezone

from celery.beat import ScheduleEntry, Scheduler
from celery.utils.log import get_logger
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from models import MARKER_ID, Schedule, ScheduleChange, utcnow
from panel.beat import housekeeping
from panel.beat.lock import DISPATCH_KEY, BeatLock
from panel.beat.schedules import schedule_of
from panel.broker import connection
from panel.database import reader
from panel.errors import ValidationError
from panel.host.target import EMBEDDED_BEAT_READY, Target
from panel.runlog import recorder

logger = get_logger(__name__)
MARKER_CHECK_S = 1.0
tasks_t = Schedule.__table__
marker_t = ScheduleChange.__table__


def _aware(value):
    return value.replace(tzinfo=timezone.utc) if value is not None else None


class DatabaseScheduler(Scheduler):
    """Entries come from enabled rows; an edit is seen through the change marker within seconds."""

    Entry = ScheduleEntry

    def __init__(self, app, *args, **kwargs):
        self._schedule = {}
        self._marker = None
        self._marker_checked = 0.0
        self._engine = None
        self._lock = None
        self._waiting_logged = False
        self._by_name = not Target.of(app.flask_app.config).embedded
        super().__init__(app, *args, **kwargs)
        self.max_interval = min(self.max_interval, float(app.conf.beat_max_loop_interval or 5))

    # -- loading ------------------------------------------------------------------------------
    def setup_schedule(self):
        flask_app = self.app.flask_app
        self._engine = recorder._engine
        self.app.loader.import_default_modules()
        cfg = flask_app.config
        lock_url = next((u for u in (cfg["CELERY_BROKER_URL"], cfg["CELERY_RESULT_BACKEND"])
                         if connection.is_redis(u)), None)
        if lock_url:
            self._lock = BeatLock(lock_url, f"panel:beat-lock:{cfg['INSTANCE_PATH']}", cfg["BEAT_LOCK_TTL_S"])
        else:
            logger.warning("DatabaseScheduler: no Redis URL, so no lock: run only one Beat")
        self._reload()
        logger.info("%s (%d enabled tasks)", EMBEDDED_BEAT_READY, len(self._schedule))

    def _read_marker(self):
        with reader(self._engine).connect() as conn:
            return conn.execute(select(marker_t.c.version).where(marker_t.c.id == MARKER_ID)).scalar() or 0

    def _reload(self):
        """Read enabled rows; a DB error keeps the last good schedule, a bad row is disabled."""
        try:
            marker = self._read_marker()
            with reader(self._engine).connect() as conn:
                rows = conn.execute(select(tasks_t).where(tasks_t.c.enabled.is_(True))).all()
        except SQLAlchemyError as exc:
            logger.error("DatabaseScheduler: database error, keeping the last good schedule: %s", exc)
            return False
        entries, bad = {}, []
        for row in rows:
            try:
                entries[row.name] = self._entry(row)
            except (ValidationError, ValueError, TypeError) as exc:
                bad.append((row, str(exc)))
        for row, reason in bad:
            logger.error("DatabaseScheduler: disabling task %r: %s", row.name, reason)
            self._write(update(tasks_t).where(tasks_t.c.id == row.id).values(
                enabled=False, disabled_reason=reason))
        self._schedule, self._marker = entries, marker
        self._write_next_runs(entries.values())
        return True

    def _entry(self, row):
        # Your project's task types are not imported here: sent by name (checked against its workers when saved).
        known = not row.task.startswith("celery.") if self._by_name else row.task in self.app.tasks
        if not known:
            raise ValidationError("task", f"{row.task!r} is not a registered Celery task")
        return self.Entry(
            name=row.name, task=row.task, schedule=schedule_of(row, self.app),
            args=list(row.args or []), kwargs=dict(row.kwargs or {}),
            options={"headers": {recorder.SCHEDULE_HEADER: row.id}},
            last_run_at=_aware(row.last_run_at), total_run_count=row.run_count or 0, app=self.app)

    def _write(self, *statements):
        try:
            with self._engine.begin() as conn:
                for statement in statements:
                    conn.execute(statement)
        except SQLAlchemyError as exc:
            logger.error("DatabaseScheduler: could not write to the database: %s", exc)

    def _write_next_runs(self, entries):
        now = utcnow()
        self._write(*[
            update(tasks_t).where(tasks_t.c.id == e.options["headers"][recorder.SCHEDULE_HEADER]).values(
                next_run_at=now + timedelta(seconds=max(0.0, e.is_due()[1])))
            for e in entries])

    # -- the schedule Celery reads ------------------------------------------------------------
    @property
    def schedule(self):
        now = time.monotonic()
        if now - self._marker_checked >= MARKER_CHECK_S:
            self._marker_checked = now
            try:
                changed = self._read_marker() != self._marker
            except SQLAlchemyError as exc:
                logger.error("DatabaseScheduler: cannot read the change marker, keeping the schedule: %s", exc)
                changed = False
            if changed:
                logger.info("DatabaseScheduler: schedule changed, reloading")
                self._reload()
        return self._schedule

    def reserve(self, entry):
        new_entry = self._schedule[entry.name] = next(entry)
        return new_entry

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        """The panel's own housekeeping runs in the panel while a project is attached; the rest is sent."""
        if housekeeping.runs_here(self.app.flask_app.config, entry.task):
            entry = self.reserve(entry) if advance else entry
            return housekeeping.run_here(self.app, entry.task, list(entry.args), dict(entry.kwargs),
                                         dict(entry.options["headers"]))
        return super().apply_async(entry, producer=producer, advance=advance, **kwargs)

    def apply_entry(self, entry, producer=None):
        super().apply_entry(entry, producer=producer)
        current = self._schedule.get(entry.name)
        if current is not None:
            self._write_next_runs([current])
        self._note_dispatch(entry.name)

    def _note_dispatch(self, name):
        """The health view's "last Beat dispatch": noted in Redis beside the lock, never fatal."""
        if self._lock is None:
            return
        note = json.dumps({"at": utcnow().isoformat() + "Z", "task": name})
        try:
            self._lock.client.set(DISPATCH_KEY.format(self.app.flask_app.config["INSTANCE_PATH"]), note)
        except Exception as exc:  # redis errors: the send itself already happened
            logger.warning("DatabaseScheduler: could not note the dispatch: %s", exc)

    def tick(self, *args, **kwargs):
        """Send only while holding the lock; on taking it over, reload so nothing is sent twice."""
        if self._lock is not None:
            was_held = self._lock.held
            if not self._lock.acquire_or_renew():
                if not self._waiting_logged:
                    logger.warning("DatabaseScheduler: another Beat holds the lock (%s); not sending",
                                   self._safe_holder())
                    self._waiting_logged = True
                return min(self.max_interval, self._lock.ttl_ms / 3000)
            if not was_held:
                logger.info("DatabaseScheduler: holding the Beat lock, sending scheduled tasks")
                self._waiting_logged = False
                self._reload()
                self._heap = None
        return super().tick(*args, **kwargs)

    def _safe_holder(self):
        try:
            return self._lock.holder()
        except Exception:  # only used in a log line
            return "unknown"

    def sync(self):
        """Run bookkeeping is written as each message is sent; nothing is batched here."""

    def close(self):
        if self._lock is not None:
            self._lock.release()
        super().close()

    @property
    def info(self):
        return "    . db -> panel database (change marker, Redis lock)"
