"""Send later: a countdown or an eta holds the run back on a real worker (Redis and RabbitMQ), the run is recorded
as queued with its ETA, and a bad countdown, eta, expires or priority is a 400 naming the field."""
from datetime import datetime, timedelta, timezone

import pytest

from models import utcnow
from tests.helpers import api_client, run_row, start_worker, wait_for

COUNTDOWN_S = 3


def send(client, **body):
    return client.post("/api/registered-tasks/tests.add/send", json={"args": [2, 3], **body})


def ended(app, task_id):
    row = run_row(app, task_id)
    return row is not None and row.status == "completed" and row


def test_a_countdown_run_does_not_start_before_it_and_is_recorded_with_its_eta(broker_app):
    app = broker_app
    start_worker(app)
    op = api_client(app, "operator")
    sent_at = utcnow()  # the run log's clock (naive UTC), read before the send
    resp = send(op, countdown=COUNTDOWN_S)
    assert resp.status_code == 200 and f"countdown {COUNTDOWN_S} s" in resp.get_json()["message"], resp.get_json()
    task_id = resp.get_json()["celery_task_id"]
    queued = op.get(f"/api/runs/{task_id}").get_json()
    assert queued["status"] == "pending" and queued["eta"], queued
    eta = datetime.fromisoformat(queued["eta"].replace("Z", "+00:00")).replace(tzinfo=None)
    # the send's own time, however slow
    assert timedelta(seconds=COUNTDOWN_S) <= eta - sent_at < timedelta(seconds=COUNTDOWN_S + 60)
    row = wait_for(lambda: ended(app, task_id), 60, "the countdown run to end")
    assert row.started_at >= sent_at + timedelta(seconds=COUNTDOWN_S)  # the worker's own start time
    assert row.started_at >= eta and row.result == "5"


def test_an_eta_run_starts_no_sooner_than_its_eta(make_app):
    app = make_app()
    start_worker(app)
    eta = datetime.now(timezone.utc) + timedelta(seconds=COUNTDOWN_S)
    eta = eta.replace(microsecond=eta.microsecond // 1000 * 1000)  # as sent: to the millisecond
    resp = send(api_client(app, "operator"), eta=eta.isoformat(timespec="milliseconds"), expires=120, priority=3)
    assert resp.status_code == 200, resp.get_json()
    row = wait_for(lambda: ended(app, resp.get_json()["celery_task_id"]), 60, "the eta run to end")
    assert row.started_at >= eta.replace(tzinfo=None) and row.eta == eta.replace(tzinfo=None)


def _later(seconds):
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).isoformat(timespec="seconds")


@pytest.mark.parametrize("body, field", [
    ({"countdown": 0}, "countdown"), ({"countdown": -5}, "countdown"), ({"countdown": "10"}, "countdown"),
    ({"countdown": 100_000}, "countdown"),             # past SEND_LATER_MAX_S (1500 s)
    ({"countdown": 10**9}, "countdown"),               # past the document's bound
    ({"eta": "2030-01-01T12:00:00"}, "eta"),           # no zone
    ({"eta": "tomorrow"}, "eta"), ({"eta": "2030-02-31T12:00:00Z"}, "eta"),
    ({"eta": "2001-01-01T12:00:00Z"}, "eta"),          # in the past
    ({"countdown": 10, "eta": "2030-01-01T12:00:00Z"}, "eta"),
    ({"priority": 10}, "priority"), ({"priority": -1}, "priority"), ({"priority": 1.5}, "priority"),
    ({"expires": 0}, "expires"), ({"expires": "soon"}, "expires"),
    ({"countdown": 60, "expires": 30}, "expires"),     # would expire before it may start
])
def test_bad_send_later_values_are_400_naming_the_field(client, body, field):
    resp = send(client, **body)
    assert resp.status_code == 400 and resp.get_json()["field"] == field, resp.get_json()


def test_an_eta_beyond_the_bound_and_a_countdown_in_the_url_are_refused(client):
    resp = send(client, eta=_later(3600))
    assert resp.status_code == 400 and resp.get_json()["field"] == "eta"
    assert "SEND_LATER_MAX_S" in resp.get_json()["message"]
    resp = client.post("/api/registered-tasks/tests.add/send?countdown=60", json={"args": [1, 1]})
    assert resp.status_code == 400 and resp.get_json()["field"] == "countdown"  # not dropped, run at once
