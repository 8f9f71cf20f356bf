"""Dates at the calendar's edge in every field that takes one: a time Python cannot shift to UTC is a 400 naming its
field where a time is needed (a send's eta and expires), and an open-ended bound where it filters (since, until,
before: the edge itself); never a 500."""
import pytest

from models import Run, db
from panel.broker import queues
from tests.helpers import api_client

PAST_THE_END = "9999-12-31T23:59:59-14:00"  # 10000-01-01T13:59:59Z in UTC: past Python's last date
BEFORE_THE_START = "0001-01-01T00:00:00+14:00"  # 0000-12-31T10:00:00Z: before its first
EDGES = (PAST_THE_END, BEFORE_THE_START)
SEND = "/api/registered-tasks/crawl_url/send"


def nothing_sent(app):
    with app.app_context():
        try:
            recorded = db.session.query(Run).count()
        finally:
            db.session.remove()
    return queues.sizes(app.extensions["celery"], ["celery"])["celery"] == 0 and recorded == 0


@pytest.mark.parametrize("field", ["eta", "expires"])
@pytest.mark.parametrize("moment", EDGES)
def test_a_send_at_the_calendar_s_edge_is_400_naming_the_field_and_sends_nothing(app, field, moment):
    resp = api_client(app, "operator").post(SEND, json={"args": ["http://127.0.0.1:9/"], field: moment})
    body = resp.get_json()
    assert resp.status_code == 400 and body["field"] == field, body
    assert "outside the calendar once shifted to UTC" in body["message"] and moment in body["message"]
    assert nothing_sent(app)


def test_a_send_that_expires_on_the_calendar_s_last_second_in_utc_is_sent(app):
    resp = api_client(app, "operator").post(SEND, json={"args": ["http://127.0.0.1:9/"],
                                                        "expires": "9999-12-31T23:59:59Z"})
    assert resp.status_code == 200, resp.get_json()


def test_an_expiry_that_is_not_a_time_is_named_as_a_time_not_a_number(app):
    body = api_client(app, "operator").post(SEND, json={"expires": "tomorrow"}).get_json()
    assert body["field"] == "expires" and "ISO 8601" in body["message"] and "seconds from now" in body["message"]


@pytest.mark.parametrize("moment", EDGES)
def test_every_filter_date_at_the_calendar_s_edge_filters_from_or_to_the_edge(app, moment):
    client = api_client(app, "admin")
    for field in ("since", "until"):
        for path in ("/api/runs", "/api/runs/export", "/api/runs/export?format=json&x=1", "/runs"):
            resp = client.get(f"{path}{'&' if '?' in path else '?'}{field}={moment.replace('+', '%2B')}")
            assert resp.status_code == 200, (path, field, resp.get_data()[:300])
        bulk = client.post("/api/runs/bulk", json={"action": "retry", "filter": {field: moment}, "dry_run": True})
        assert bulk.status_code == 200 and bulk.get_json()["matched"] == 0, bulk.get_json()
    delete = client.post("/api/runs/delete", json={"before": moment, "dry_run": True})
    assert delete.status_code == 200 and delete.get_json()["would_delete"] == 0, delete.get_json()
