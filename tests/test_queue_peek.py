"""Peeking at a queue's waiting messages on Redis and RabbitMQ: the order a worker takes them, nothing taken or
moved (the run-in-that-order half, with a real worker, is in tests/test_queue_pause.py)."""
import uuid

import pytest
from kombu import Connection

from tests.helpers import api_client


@pytest.fixture
def Q(redis_server, request):
    """A queue of this test's own, emptied at the end (the Redis server lives for the whole session)."""
    name = f"peek-{uuid.uuid4().hex[:8]}"
    peek.queue = name
    yield name
    url = redis_server.url if "broker_app" not in request.fixturenames else \
        request.getfixturevalue("broker_app").config["CELERY_BROKER_URL"]
    with Connection(url, connect_timeout=5) as conn:
        conn.default_channel.queue_purge(name)


def peek(client, limit=None):
    resp = client.get(f"/api/queues/{peek.queue}/messages" + (f"?limit={limit}" if limit is not None else ""))
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def test_peek_lists_waiting_messages_in_order_without_taking_or_moving_them(broker_app, Q):
    broker_app.config["WORKER_QUEUES"] = f"celery,{Q}"  # no worker runs: the messages stay
    celery, viewer = broker_app.extensions["celery"], api_client(broker_app, "viewer")
    sent = [celery.send_task("tests.add", args=[i, i], queue=Q).id for i in range(25)]
    long = celery.send_task("tests.add", kwargs={"text": "x" * 5000}, queue=Q, countdown=600, expires=900).id
    first = peek(viewer)
    assert first["waiting"] == 26 and first["shown"] == 20 and first["paused"] is False
    assert [m["id"] for m in first["messages"]] == sent[:20]
    assert first["messages"][0] == dict(first["messages"][0], position=1, task="tests.add", args="[0, 0]",
                                        kwargs="{}", eta=None, retries=0)
    everything = peek(viewer, 100)
    assert [m["id"] for m in everything["messages"]] == sent + [long] and everything == peek(viewer, 100)
    shown = everything["messages"][-1]
    assert len(shown["kwargs"]) <= 200 and shown["kwargs"].endswith("…") and shown["eta"] and shown["expires"]
    assert peek(viewer, 3)["messages"] == first["messages"][:3]
    queues = {q["name"]: q for q in viewer.get("/api/queues").get_json()["queues"]}
    assert queues[Q]["messages"] == 26  # nothing was taken


def test_peek_limit_is_bounded_and_named_when_wrong(make_app, Q):
    viewer = api_client(make_app(WORKER_QUEUES=f"celery,{Q}"), "viewer")
    for bad in ("0", "101", "x"):
        resp = viewer.get(f"/api/queues/{Q}/messages?limit={bad}")
        assert resp.status_code == 400 and resp.get_json()["field"] == "limit", resp.get_json()
    assert peek(viewer)["messages"] == [] and peek(viewer)["waiting"] == 0


def test_on_redis_a_message_of_a_higher_priority_step_is_shown_first(make_app, Q):
    app = make_app(WORKER_QUEUES=f"celery,{Q}")
    celery = app.extensions["celery"]
    low = celery.send_task("tests.add", args=[1, 1], queue=Q, priority=9).id
    high = celery.send_task("tests.add", args=[2, 2], queue=Q, priority=0).id
    messages = peek(api_client(app, "viewer"))["messages"]
    assert [(m["id"], m["priority"]) for m in messages] == [(high, 0), (low, 9)]
