"""Runs that ended while the panel was away on Redis, read back from the result backend.

On Redis, Celery sends its events by PUB/SUB: nothing keeps them for a panel that is not listening. The run
log notes the newest event it wrote (a mark in the instance folder); when the recorder starts again, every
result the backend stored since that mark becomes the event it would have been, and is folded by the same
rule as the live ones, so a run already in the log keeps its ending and one never seen is added.
"""
import logging
import os
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from panel.broker import connection, results

log = logging.getLogger("panel.backfill")
MARGIN_S = 60.0   # events in flight, and clocks of other hosts a little behind
SAVE_EVERY_S = 1.0
CHUNK = 1000
EVENT_OF = {"SUCCESS": "task-succeeded", "FAILURE": "task-failed", "REVOKED": "task-revoked"}


class SeenMark:
    """The newest event time written, kept on disk so a restarted panel knows where its gap began."""

    def __init__(self, instance_path):
        self.path = Path(instance_path) / "run" / "events.seen"
        self.newest, self._saved_at = None, 0.0

    def read(self):
        try:
            return datetime.fromtimestamp(float(self.path.read_text().strip()), timezone.utc)
        except (OSError, ValueError):
            return None

    def note(self, stamp):
        """A batch was written up to `stamp` (seconds since the epoch); saved at most every SAVE_EVERY_S."""
        if stamp is not None and stamp > (self.newest or 0):
            self.newest = stamp
            if time.monotonic() - self._saved_at >= SAVE_EVERY_S:
                self.save()

    def save(self):
        if self.newest is None:
            return
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(f"{self.newest}\n")
            os.replace(tmp, self.path)
        except OSError as exc:  # the instance folder went away or is full: the next read-back starts earlier
            log.warning("run log: could not keep the newest event time in %s: %s", self.path, exc)
        self._saved_at = time.monotonic()


def needed(config):
    """Only a Redis broker loses events while the panel is away (on AMQP they wait in the panel's queue)."""
    return connection.is_redis(config["CELERY_BROKER_URL"])


def as_event(meta):
    """A stored result as the worker's own ending event."""
    kind, result = EVENT_OF.get(meta["status"], "task-failed"), meta.get("result")
    event = {"type": kind, "uuid": meta["task_id"], "timestamp": meta["date_done"].timestamp(),
             "name": meta.get("name"), "hostname": meta.get("worker"), "retries": meta.get("retries") or 0}
    for field in ("args", "kwargs"):
        if meta.get(field) is not None:
            event[field] = repr(meta[field])
    if kind == "task-succeeded":
        event["result"] = repr(result)
    else:
        event["exception"], event["traceback"] = repr(result), meta.get("traceback")
    return event


def fill_gap(celery, writer, mark):
    """Write what the backend kept of runs that ended since the mark (less a margin); how many rows changed.

    Once per recorder start (GapFiller): a broker outage stops the workers' events and their tasks alike. A
    failure here is logged and the live recording goes on."""
    since = mark.read()
    if since is None:
        return 0  # never recorded here before: the panel's history starts now
    try:
        metas = [m for m in results.ended_since(celery, since - timedelta(seconds=MARGIN_S)) if m.get("task_id")]
        events = [as_event(meta) for meta in metas]
        written = sum(writer.write(events[i:i + CHUNK]) for i in range(0, len(events), CHUNK))
    except Exception as exc:  # the backend or the database is away: the live events still count
        log.warning("run log: could not read back the runs that ended while the panel was away: %s", exc)
        return 0
    if written:
        log.info("run log: %d run(s) that ended while the panel was away read back from the result backend", written)
    return written


class GapFiller:
    """Fills the gap once, when the recorder is surely listening (its second idle call, after one drain of
    the broker), so a run that ends meanwhile is either read back or seen live, never neither. In a thread
    of its own: a long read of the backend must not hold up the live events (Redis drops a slow subscriber)."""

    def __init__(self, celery, writer, mark):
        self.celery, self.writer, self.mark, self.calls = celery, writer, mark, 0

    def __call__(self):
        self.calls += 1
        if self.calls == 2:
            threading.Thread(target=fill_gap, args=(self.celery, self.writer, self.mark), name="run-events-gap",
                             daemon=True).start()
