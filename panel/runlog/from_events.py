"""The run log of an app the panel cannot hook into (your own project): runs recorded from Celery's task events.

Events may come twice or out of order. Each batch is folded onto the rows as they stand, by one rule: an
ending is final unless the worker really ran the task again later; a retry reopens; a start or a
receipt never moves a row back. Writes are one read and one upsert per batch, so a replayed batch
changes nothing.
"""
import ast
import logging
import threading
import time
from datetime import datetime, timezone

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError

from models import COMPLETED, FAILED, PENDING, RUNNING, Run
from panel.broker import events
from panel.database import unmapped_engine
from panel.runlog import backfill, ending, runtime, statements
from panel.runlog.recorder import clip
from panel.target import Target

log = logging.getLogger("panel.from_events")
logs_t = Run.__table__
RECONNECT_MIN_S, RECONNECT_MAX_S = 0.5, 15.0
FIELDS = ("task_name", "status", "state", "args", "kwargs", "queued_at", "started_at", "finished_at", "worker",
          "result", "error", "traceback", "retries", "next_retry_at")
TASK_EVENTS = ("task-sent", "task-received", "task-started", "task-succeeded", "task-failed", "task-retried",
               "task-revoked", "task-rejected")


def at(event):
    """The event's time as naive UTC (the run log's convention)."""
    stamp = event.get("timestamp")
    if not isinstance(stamp, (int, float)):
        return None
    return datetime.fromtimestamp(stamp, timezone.utc).replace(tzinfo=None)


def _eta(value):
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed.astimezone(timezone.utc).replace(tzinfo=None) if parsed.tzinfo else parsed


def _shown(value):
    """Args and kwargs from the events' repr: the values when it reads as literals, else the repr itself
    (an object's repr, or cut by the worker at its limit with "...")."""
    if value is None:
        return None
    try:
        parsed = ast.literal_eval(str(value))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return clip(str(value))
    if isinstance(parsed, tuple):
        parsed = list(parsed)
    return parsed if isinstance(parsed, (list, dict)) else clip(str(value))


def new_row(task_id):
    """A run first seen now; what no event tells stays None (a read-back ending without extended result: no name)."""
    return {"celery_task_id": task_id, "task_name": None, "status": PENDING, "state": "PENDING",
            "args": None, "kwargs": None, "queued_at": None, "started_at": None, "finished_at": None,
            "worker": None, "result": None, "error": None, "traceback": None, "retries": 0, "next_retry_at": None}


def _details(row, event, when):
    """What any event tells that the row may not know yet: never overwrites with nothing."""
    if event.get("name"):
        row["task_name"] = clip(str(event["name"]), 200)
    for field in ("args", "kwargs"):
        if event.get(field) is not None and row[field] is None:
            row[field] = _shown(event[field])
    if event.get("hostname") and event["type"] != "task-sent":
        row["worker"] = clip(str(event["hostname"]), 200)
    if (when and (row["queued_at"] is None or when < row["queued_at"])
            and event["type"] in ("task-sent", "task-received")):
        row["queued_at"] = when


def _runtime(row):
    """runtime_s from the folded row (its start may have been folded after its end)."""
    return runtime.between(row["started_at"], row["finished_at"])


def _end(row, when, status, state, **values):
    row.update(status=status, state=state, finished_at=when, next_retry_at=None, **values)


def fold(row, event):
    """One event onto one row (a dict of FIELDS); returns the row."""
    kind, when = event["type"], at(event)
    _details(row, event, when)
    status = row["status"]
    later = when is not None and (row["finished_at"] is None or when > row["finished_at"])
    if kind in ("task-sent", "task-received"):
        row["retries"] = max(row["retries"], int(event.get("retries") or 0))
        if ending.moves(status, "sent") and row["state"] in ("PENDING", "RECEIVED", "RETRY"):
            row["next_retry_at"] = _eta(event.get("eta"))
            if row["state"] != "RETRY":
                row["state"] = "RECEIVED" if kind == "task-received" else "PENDING"
    elif kind == "task-started":
        if ending.moves(status, "started", later):
            row.update(status=RUNNING, state="STARTED", started_at=when, finished_at=None, next_retry_at=None)
    elif kind == "task-succeeded" and ending.moves(status, "succeeded"):
        result = event.get("result")
        _end(row, when, COMPLETED, "SUCCESS", result=None if result is None else clip(str(result)), error=None)
    elif not ending.moves(status, kind):
        return row
    elif kind == "task-failed":
        _end(row, when, FAILED, "FAILURE", error=clip(str(event.get("exception") or "failed")),
             traceback=clip(event.get("traceback")))
    elif kind == "task-retried":
        # The count comes from the retry's own message (its `retries`, in task-received), which the worker
        # receives at once, ETA or not, and sometimes a moment before this event: counting here too would
        # count a retry twice.
        row.update(status=PENDING, state="RETRY", error=clip(str(event.get("exception") or "")),
                   traceback=clip(event.get("traceback")))
    elif kind == "task-revoked":
        why = (f"terminated by signal {event.get('signum')}" if event.get("terminated")
               else "expired" if event.get("expired") else "revoked")
        _end(row, when, FAILED, "REVOKED", error=f"Task {why}")
    elif kind == "task-rejected" and not event.get("requeue"):
        _end(row, when, FAILED, "REJECTED", error="Rejected by the worker")
    return row


def fold_batch(rows, events):
    """{task_id: row} after the batch: events of one run in their own time order (ties keep arrival order)."""
    by_run = {}
    for index, event in enumerate(events):
        if event.get("uuid") and event.get("type") in TASK_EVENTS:
            by_run.setdefault(event["uuid"], []).append((event.get("timestamp") or 0, index, event))
    out = {}
    for task_id, items in by_run.items():
        row = dict(rows[task_id]) if task_id in rows else new_row(task_id)
        for _, _, event in sorted(items, key=lambda item: item[:2]):
            fold(row, event)
        if row["queued_at"] is None:
            row["queued_at"] = row["started_at"] or row["finished_at"] or at(items[0][2])
        out[task_id] = row
    return out


class EventWriter:
    """Writes folded batches: one SELECT for the batch's rows, then one UPDATE and one INSERT executemany."""

    def __init__(self, engine):
        self.engine = engine
        self.written = 0
        self.schedule_status = statements.for_dialect(engine.dialect.name)["schedule_status"]

    def write(self, events):
        """Fold and write one batch; a row another writer inserted meanwhile makes it read again, once."""
        try:
            return self._write(events)
        except IntegrityError:  # the panel's own send recorded the run between our read and our insert
            return self._write(events)

    def _write(self, events):
        ids = sorted({e["uuid"] for e in events if e.get("uuid") and e.get("type") in TASK_EVENTS})
        if not ids:
            return 0
        with self.engine.begin() as conn:
            stored = {r.celery_task_id: dict(r._mapping) for r in conn.execute(
                select(logs_t.c.celery_task_id, *[logs_t.c[f] for f in FIELDS])
                .where(logs_t.c.celery_task_id.in_(ids)))}
            folded = fold_batch(stored, events)
            changed = [row for tid, row in folded.items() if tid in stored and row != stored[tid]]
            fresh = [row for tid, row in folded.items() if tid not in stored]
            if changed:
                conn.execute(update(logs_t).where(logs_t.c.celery_task_id == bindparam("tid"))
                             .values({f: bindparam(f) for f in (*FIELDS, "runtime_s")}),
                             [dict({f: row[f] for f in FIELDS}, tid=row["celery_task_id"], runtime_s=_runtime(row))
                              for row in changed])
            if fresh:
                conn.execute(logs_t.insert(), [dict(row, runtime_s=_runtime(row)) for row in fresh])
            self._schedules(conn, changed)
        self.written += len(changed) + len(fresh)
        return len(changed) + len(fresh)

    def _schedules(self, conn, rows):
        """A scheduled run's status moves its schedule's badge: the recorder's own statement, for the scheduled runs
        only (one look for the batch instead of one statement a run)."""
        if not rows:
            return
        scheduled = set(conn.scalars(select(logs_t.c.celery_task_id).where(
            logs_t.c.celery_task_id.in_([row["celery_task_id"] for row in rows]),
            logs_t.c.scheduled_task_id.is_not(None))))
        moved = [{"tid": row["celery_task_id"], "st": row["status"]} for row in rows
                 if row["celery_task_id"] in scheduled]
        if moved:
            conn.execute(self.schedule_status, moved)


class Batcher:
    """Events in, batches out: a batch is written when it is full or its oldest event waited FLUSH_S."""

    BATCH = 250
    FLUSH_S = 0.2

    def __init__(self, writer, mark=None):
        self.writer, self.mark, self.pending, self.since = writer, mark, [], 0.0

    def add(self, event):
        if not self.pending:
            self.since = time.monotonic()
        self.pending.append(event)
        if len(self.pending) >= self.BATCH or time.monotonic() - self.since >= self.FLUSH_S:
            self.flush()

    def flush_due(self):
        """The idle call: a partial batch whose oldest event waited FLUSH_S goes (not one write per message)."""
        if self.pending and time.monotonic() - self.since >= self.FLUSH_S:
            self.flush()

    def flush(self):
        if self.pending:
            batch, self.pending = self.pending, []
            self.writer.write(batch)
            if self.mark is not None:
                self.mark.note(max((e.get("timestamp") or 0 for e in batch), default=None))


def enabled(config):
    """Recorded from events: your own project (the embedded app records its runs from inside its worker)."""
    setting = str(config.get("RUN_EVENTS") or "auto").lower()
    return setting == "on" or (setting == "auto" and not Target.of(config).embedded)


def run(app, stop, on_listening=None):
    """The thread's body: consume the durable event queue, and on any failure reconnect with a bounded backoff.

    on_listening() is called once, when the recorder first consumes (a start-up settle waits for it)."""
    config, celery = app.config, app.extensions["celery"]
    engine = unmapped_engine(config["SQLALCHEMY_DATABASE_URI"])  # its own, so the panel's memory stays flat
    name = events.durable_queue_name(config["INSTANCE_PATH"])
    writer, mark = EventWriter(engine), backfill.SeenMark(config["INSTANCE_PATH"])
    batcher = Batcher(writer, mark)
    delay = RECONNECT_MIN_S
    gap = backfill.GapFiller(celery, writer, mark) if backfill.needed(config) else (lambda: None)

    def idle():
        batcher.flush_due()
        gap()
        if on_listening is not None and not listening:
            listening.append(on_listening())
    listening = []
    while not stop.is_set():
        try:
            events.capture_durable(celery, name, batcher.add, stop, max_length=config["EVENT_QUEUE_MAX_LENGTH"],
                                   max_age_s=config["EVENT_QUEUE_MAX_AGE_S"], expires_s=config["EVENT_QUEUE_EXPIRES_S"],
                                   on_idle=idle)
            batcher.flush()
            delay = RECONNECT_MIN_S
        except Exception as exc:  # the broker or the database went away: both come back
            log.warning("run log from events lost its stream (%s); reconnecting in %.1fs", exc, delay)
            stop.wait(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)
    mark.save()
    engine.dispose()


def start(app, on_listening=None):
    """Start the event recorder as a daemon thread; returns its stop event."""
    stop = threading.Event()
    threading.Thread(target=run, args=(app, stop, on_listening), name="run-events", daemon=True).start()
    return stop
