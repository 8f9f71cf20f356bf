"""The cluster monitor thread: real events over a real Redis, counters per worker process, reconnects."""
from pathlib import Path

import pytest
from celery.events.dispatcher import EventDispatcher as Dispatcher

from models import WorkerNode, db
from panel.cluster import monitor
from tests import helpers
from tests.helpers import RedisServer, wait_for

NODE = "fake@far-host"


def node(app, name=NODE):
    with app.app_context():
        try:
            return db.session.query(WorkerNode).filter_by(name=name).one_or_none()
        finally:
            db.session.remove()


class FakeWorker:
    """Sends the events a worker sends, as another host would, through the app's broker."""

    def __init__(self, app, name=NODE, pid=4242):
        self.conn = app.extensions["celery"].connection_for_write()
        self.dispatcher = Dispatcher(self.conn, hostname=name, enabled=True, app=app.extensions["celery"])
        self.dispatcher.pid = pid

    def send(self, kind, **fields):
        self.dispatcher.send(kind, freq=2.0, sw_ver="5.7.0", sw_sys="Linux", **fields)

    def close(self):
        self.dispatcher.close()
        self.conn.release()


@pytest.fixture
def watched(make_app):
    app = make_app()
    stop = monitor.start(app)
    fake = FakeWorker(app)
    yield app, fake
    stop.set()
    fake.close()


def announced(app, fake, kind="worker-online", **fields):
    """Send until the monitor has subscribed (events are fire-and-forget) and the row shows it."""
    def seen():
        fake.send(kind, active=0, processed=0, **fields)
        row = node(app)
        return row if row and row.pid == fake.dispatcher.pid else None
    return wait_for(seen, 20, f"{kind} from {NODE} recorded")


def test_events_make_a_row_with_counters_that_reset_when_the_process_changes(watched):
    app, fake = watched
    row = announced(app, fake)
    assert row.online and row.hostname == "far-host" and row.sw_ver == "5.7.0" and row.succeeded == 0
    for kind in ("task-succeeded", "task-succeeded", "task-failed"):
        fake.send(kind, uuid="x")
    wait_for(lambda: (fake.send("worker-heartbeat", active=1, processed=3), node(app))[1].failed == 1, 10,
             "counters flushed with a heartbeat")
    row = node(app)
    assert (row.succeeded, row.failed, row.processed, row.active) == (2, 1, 3, 1)
    fake.dispatcher.pid = 4343  # the worker was restarted under the same node name
    wait_for(lambda: (fake.send("worker-heartbeat", active=0, processed=0), node(app))[1].pid == 4343, 10, "new pid")
    assert (node(app).succeeded, node(app).failed) == (0, 0)
    fake.send("worker-offline")
    row = wait_for(lambda: (r := node(app)) and not r.online and r, 10, "the offline event")
    assert row.offline_at is not None


def test_the_monitor_survives_the_broker_going_away_and_reconnects(make_app, tmp_path, monkeypatch):
    redis = RedisServer(tmp_path)
    app = make_app(CELERY_BROKER_URL=redis.url)
    stop = monitor.start(app)
    fake = None
    try:
        fake = FakeWorker(app)
        announced(app, fake)
        fake.close()
        redis.stop()
        log = Path(app.config["INSTANCE_PATH"]) / "logs" / "panel.log"
        wait_for(lambda: "cluster monitor lost its event stream" in log.read_text(errors="replace"), 30,
                 "the monitor to lose its stream and start backing off")
        monkeypatch.setattr(helpers, "free_port", lambda: redis.port)
        redis = RedisServer(tmp_path)  # the same address comes back
        fake = FakeWorker(app, name="late@far-host", pid=99)
        row = wait_for(lambda: (fake.send("worker-heartbeat", active=0, processed=0), node(app, "late@far-host"))[1],
                       30, "an event after the broker came back")
        assert row.online and row.pid == 99
    finally:
        stop.set()
        if fake:
            fake.close()
        redis.stop()
