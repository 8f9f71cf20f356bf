"""Retry and bulk retry send only what a send would: arguments within its limits, and never a quarantined message
(requeue from the quarantine is the deliberate path); a bulk dry run counts exactly what the real run sends."""
import pytest

from models import QUARANTINED, SUSPECT, QuarantinedMessage, Run, db, utcnow
from panel.broker import queues
from panel.web import limits
from tests.helpers import add_runs, api_client


def nested(levels):
    """A task's args nested `levels` deep, the args list itself counted (as the send's limit counts)."""
    value = []
    for _ in range(levels - 1):
        value = [value]
    return value


OVER = {"args": ("args", nested(limits.ARGS_DEPTH_MAX + 1), {}),
        "kwargs": ("kwargs", [], {"blob": "x" * limits.ARGS_BYTES_MAX})}


def waiting(app):
    """Messages in the default queue: a refused retry sends nothing."""
    return queues.sizes(app.extensions["celery"], ["celery"])["celery"]


def failed_run(app, **fields):
    return add_runs(app, [{"status": "failed", "state": "FAILURE", "task_name": "tests.add", "args": [1, 2],
                           **fields}])[0]


def retries_of(app, celery_task_id):
    with app.app_context():
        try:
            return db.session.query(Run).filter_by(retry_of=celery_task_id).count()
        finally:
            db.session.remove()


def quarantine(app, celery_task_id, state=QUARANTINED):
    with app.app_context():
        db.session.add(QuarantinedMessage(celery_task_id=celery_task_id, task_name="tests.add", queue="celery",
                                          state=state, deaths=2, evidence="RecursionError: test",
                                          quarantined_at=utcnow() if state == QUARANTINED else None))
        db.session.commit()
        db.session.remove()


@pytest.mark.parametrize("over", OVER)
def test_retry_of_a_run_whose_recorded_arguments_exceed_a_send_s_limits_is_400_and_sends_nothing(app, over):
    field, args, kwargs = OVER[over]
    run = failed_run(app, args=args, kwargs=kwargs)
    resp = api_client(app, "operator").post(f"/api/runs/{run}/retry")
    body = resp.get_json()
    assert resp.status_code == 400 and body["field"] == field, body
    limit = limits.ARGS_DEPTH_MAX if field == "args" else limits.ARGS_BYTES_MAX
    assert f"limit of {limit}" in body["message"] and "ARGS_DEPTH_MAX" in body["message"], body
    assert waiting(app) == 0 and retries_of(app, run) == 0


def test_bulk_retry_names_runs_over_the_limits_as_not_done_and_its_dry_run_counts_what_it_sends(app):
    client = api_client(app, "operator")
    good = failed_run(app)
    over = {failed_run(app, args=args, kwargs=kwargs): field for field, args, kwargs in OVER.values()}
    request = {"action": "retry", "filter": {"status": "FAILURE"}}
    preview = client.post("/api/runs/bulk", json=dict(request, dry_run=True)).get_json()
    assert (preview["matched"], preview["applies"], preview["done"]) == (3, 1, 0), preview
    assert {n["celery_task_id"]: n["reason"].split(":")[0] for n in preview["failed"]} == over
    assert waiting(app) == 0
    done = client.post("/api/runs/bulk", json=request).get_json()
    assert (done["matched"], done["applies"], done["done"], len(done["new_ids"])) == (3, 1, 1, 1), done
    assert done["failed"] == preview["failed"]
    assert waiting(app) == 1 and retries_of(app, good) == 1 and not any(retries_of(app, cid) for cid in over)


def test_retry_of_a_quarantined_run_is_409_pointing_at_the_quarantine_and_sends_nothing(broker_app):
    app, client = broker_app, api_client(broker_app, "operator")
    poison = failed_run(app, error="Quarantined: the worker died 2 times holding this message")
    quarantine(app, poison)
    resp = client.post(f"/api/runs/{poison}/retry")
    body = resp.get_json()
    assert resp.status_code == 409, body
    assert f"message {poison} is quarantined" in body["message"] and "requeue it from the quarantine" in body["message"]
    for dry_run in (True, False):
        bulk = client.post("/api/runs/bulk", json={"action": "retry", "ids": [poison], "dry_run": dry_run}).get_json()
        assert (bulk["matched"], bulk["applies"], bulk["done"], bulk["new_ids"]) == (1, 0, 0, []), bulk
        assert bulk["failed"] == [{"celery_task_id": poison, "reason": body["message"]}]
    page = client.get(f"/runs/{poison}").get_data(as_text=True)
    assert 'id="retry-refused"' in page and "is quarantined" in page and 'id="retry-run"' not in page
    assert waiting(app) == 0 and retries_of(app, poison) == 0


def test_a_message_only_suspected_does_not_stop_its_run_s_retry(app):
    run = failed_run(app)
    quarantine(app, run, state=SUSPECT)  # one death counted against it: still in its queue, not kept
    resp = api_client(app, "operator").post(f"/api/runs/{run}/retry")
    assert resp.status_code == 200, resp.get_json()
    assert waiting(app) == 1 and retries_of(app, run) == 1
