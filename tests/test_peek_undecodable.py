"""Peek shows a waiting message it cannot decode as such (its id, its size, why) and reads the others, on Redis and
RabbitMQ: one message nested 5,000 deep no longer makes the whole queue a 503."""
import json

from kombu import Exchange, Queue

from tests.helpers import api_client

DEPTH = 5_000  # deeper than Python's JSON parser reads (it dies of RecursionError)
DEEP_ID = "deep id with spaces 1"


def deep_body():
    """Celery's message body ([args, kwargs, embed]) with args nested DEPTH deep, as JSON text."""
    embed = json.dumps({"callbacks": None, "errbacks": None, "chain": None, "chord": None})
    return ("[" + "[" * DEPTH + "]" * DEPTH + ", {}, " + embed + "]").encode()


def put_deep(celery):
    """Publish the deep message straight into the default queue, as a hostile sender would (no Celery in between)."""
    body = deep_body()
    with celery.connection_for_write() as conn:
        conn.Producer().publish(body, exchange=Exchange("celery", type="direct"), routing_key="celery",
                                declare=[Queue("celery", Exchange("celery", type="direct"), routing_key="celery")],
                                content_type="application/json", content_encoding="utf-8",
                                headers={"lang": "py", "task": "tests.add", "id": DEEP_ID, "retries": 0})
    return len(body)


def test_peek_shows_an_undecodable_message_as_such_between_the_others(broker_app):
    celery = broker_app.extensions["celery"]  # no worker runs: the messages stay where they are
    first = celery.send_task("tests.add", args=[1, 2]).id
    size = put_deep(celery)
    last = celery.send_task("tests.add", args=[3, 4]).id
    resp = api_client(broker_app, "viewer").get("/api/queues/celery/messages")
    body = resp.get_json()
    assert resp.status_code == 200, body
    shown = body["messages"]
    assert [m["id"] for m in shown] == [first, DEEP_ID, last] and body["shown"] == 3
    assert [m["args"] for m in (shown[0], shown[2])] == ["[1, 2]", "[3, 4]"]
    assert shown[0]["undecodable"] is None and shown[2]["undecodable"] is None
    deep = shown[1]
    assert deep["undecodable"].startswith("could not be decoded: ") and "nested deeper" in deep["undecodable"]
    assert (deep["size"], deep["task"], deep["args"], deep["kwargs"]) == (size, "tests.add", "", "")
