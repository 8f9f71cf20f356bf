"""The cluster monitor: a thread in the panel that keeps worker_nodes true from Celery's events."""
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from models import WorkerNode, db, utcnow
from panel.broker import events
from panel.cluster import queues, workers

log = logging.getLogger("panel.monitor")
nodes_t = WorkerNode.__table__
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 15.0
HEALTHY_RUN_S = 30.0  # a connection that lived this long resets the backoff
INFO_RETRY_S = 5.0    # a worker that did not answer the info request (still starting?) is asked again
WORKER_EVENTS = ("worker-online", "worker-heartbeat", "worker-offline")


@dataclass
class NodeCounts:
    """Per worker process: tasks ended since it came online, and when we last wrote its row."""
    pid: int | None
    succeeded: int = 0
    failed: int = 0
    written_at: float = 0.0
    dirty: bool = False
    info_pid: int | None = None   # the process whose pool, queues and tasks the row holds
    info_asked_at: float = 0.0


def _heartbeat_values(event):
    """Row values a worker event carries; the panel's clock, not the worker's, dates the heartbeat."""
    name = event["hostname"]
    return {
        "hostname": name.split("@", 1)[-1], "pid": event.get("pid"), "online": True, "offline_at": None,
        "last_heartbeat_at": utcnow(), "heartbeat_freq_s": float(event.get("freq") or 2.0),
        "sw_ver": str(event.get("sw_ver") or "")[:40], "sw_sys": str(event.get("sw_sys") or "")[:40],
        "active": int(event.get("active") or 0), "processed": int(event.get("processed") or 0),
        "loadavg": list(event.get("loadavg") or []) or None,
    }


class ClusterMonitor:
    """Consumes worker and task events and upserts one row per worker node."""

    def __init__(self, engine, ask_info=None, stop=None):
        self.engine = engine
        self.stop = stop or threading.Event()
        self.counts = {}
        # The list shows pool, queues and tasks without anyone opening a detail: asked once per process,
        # off the event thread, because a silent worker would hold it for the inspect timeout.
        self.ask_info = ask_info
        self.info_calls = ThreadPoolExecutor(max_workers=2, thread_name_prefix="worker-info")

    def handlers(self):
        return {"worker-online": self.on_online, "worker-heartbeat": self.on_heartbeat,
                "worker-offline": self.on_offline, "task-succeeded": self.on_task_end,
                "task-failed": self.on_task_end}

    def _stored_counts(self, name):
        """The row's counters, so a panel restart does not zero a worker that kept running."""
        with self.engine.connect() as conn:
            row = conn.execute(select(nodes_t.c.pid, nodes_t.c.succeeded, nodes_t.c.failed)
                               .where(nodes_t.c.name == name)).first()
        return NodeCounts(row.pid, row.succeeded, row.failed) if row else NodeCounts(None)

    def _counts_for(self, name, pid=None):
        counts = self.counts.get(name) or self.counts.setdefault(name, self._stored_counts(name))
        if pid is not None and counts.pid != pid:  # a new process under the same node name
            counts = self.counts[name] = NodeCounts(pid)
        return counts

    def on_online(self, event):
        counts = self.counts[event["hostname"]] = NodeCounts(event.get("pid"))
        self._write(event["hostname"], counts, _heartbeat_values(event))

    def on_heartbeat(self, event):
        name = event["hostname"]
        counts = self._counts_for(name, event.get("pid"))
        freq = float(event.get("freq") or 2.0)
        # Workers answer our wake-up with extra heartbeats: keep to about one write per interval.
        if time.monotonic() - counts.written_at < freq / 2 and not counts.dirty:
            return
        self._write(name, counts, _heartbeat_values(event))

    def on_offline(self, event):
        name = event["hostname"]
        counts = self._counts_for(name, event.get("pid"))
        values = {"online": False, "offline_at": utcnow(), "active": 0}
        if event.get("processed") is not None:
            values["processed"] = int(event["processed"])
        self._write(name, counts, values)

    def on_task_end(self, event):
        counts = self._counts_for(event["hostname"])
        if event["type"] == "task-succeeded":
            counts.succeeded += 1
        else:
            counts.failed += 1
        counts.dirty = True  # written with the next heartbeat, at most one interval later

    def _write(self, name, counts, values):
        values = dict(values, succeeded=counts.succeeded, failed=counts.failed)
        with self.engine.begin() as conn:
            if conn.execute(update(nodes_t).where(nodes_t.c.name == name).values(values)).rowcount == 0:
                try:
                    with conn.begin_nested():
                        conn.execute(nodes_t.insert().values(name=name, first_seen_at=utcnow(), **values))
                except IntegrityError:  # another panel process inserted it first
                    conn.execute(update(nodes_t).where(nodes_t.c.name == name).values(values))
        counts.written_at, counts.dirty = time.monotonic(), False
        if values.get("online"):
            self._maybe_ask_info(name, counts)

    def _maybe_ask_info(self, name, counts):
        now = time.monotonic()
        if self.ask_info is None or counts.info_pid == counts.pid or now - counts.info_asked_at < INFO_RETRY_S:
            return
        if self.stop.is_set():
            return
        counts.info_asked_at = now

        def job(pid=counts.pid):
            try:
                if self.ask_info(name):
                    counts.info_pid = pid
            except Exception as exc:  # broker or database away: the next heartbeat after the retry asks again
                if not self.stop.is_set():
                    log.warning("could not ask %s for its info: %s", name, exc)
        self.info_calls.submit(job)

    def dispatch(self, event):
        """One event to its handler; a bad event or a database error is logged, never fatal."""
        handler = self.handlers().get(event.get("type"))
        if handler is None or not event.get("hostname"):
            return
        try:
            handler(event)
        except Exception:
            log.exception("could not record %s from %s", event.get("type"), event.get("hostname"))


def consume(celery, monitor, stop):
    """Receive events until stop is set; raises when the broker connection fails."""
    events.capture(celery, {kind: monitor.dispatch for kind in monitor.handlers()}, stop)


def run(app, stop):
    """The thread's body: consume, and on any failure reconnect with a bounded backoff."""
    with app.app_context():
        engine = db.engine
    celery = app.extensions["celery"]

    def ask_info(name):
        """Its pool, queues and tasks first (so a queue it is to consume stays its own), then every pause."""
        with app.app_context():
            try:
                return workers.refresh_info(celery, name)
            finally:
                queues.reapply_pauses(celery, name)
    monitor = ClusterMonitor(engine, ask_info, stop)
    delay = RECONNECT_MIN_S
    while not stop.is_set():
        started = time.monotonic()
        try:
            consume(celery, monitor, stop)
        except Exception as exc:  # the broker went away, or the database: both come back
            if time.monotonic() - started > HEALTHY_RUN_S:
                delay = RECONNECT_MIN_S
            log.warning("cluster monitor lost its event stream (%s); reconnecting in %.1fs", exc, delay)
            stop.wait(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)
    monitor.info_calls.shutdown(wait=False, cancel_futures=True)


def start(app):
    """Start the monitor as a daemon thread; returns its stop event."""
    stop = threading.Event()
    threading.Thread(target=run, args=(app, stop), name="cluster-monitor", daemon=True).start()
    return stop
