"""Retrying a run from the panel, against a real worker: the same task, arguments and queue, linked both ways."""
import pytest

from tests.helpers import api_client, run_row, start_worker, wait_for

RETRY_QUEUE = "retryq"


def ended(app, celery_task_id, status):
    return wait_for(lambda: (r := run_row(app, celery_task_id)) and r.status == status and r, 30,
                    f"run {celery_task_id} to be {status}")


@pytest.fixture
def worker_app(make_app):
    app = make_app(WORKER_QUEUES=f"celery,{RETRY_QUEUE}")
    start_worker(app)
    return app


def test_a_failed_run_is_sent_again_to_its_queue_and_both_runs_link_to_each_other(worker_app):
    app, client = worker_app, api_client(worker_app, "operator")
    celery = app.extensions["celery"]
    failed = celery.send_task("tests.add", args=["one", 1], kwargs={}, queue=RETRY_QUEUE).id  # str + int: TypeError
    old = ended(app, failed, "failed")
    assert old.state == "FAILURE" and "TypeError" in old.error
    assert old.runtime_s == pytest.approx((old.finished_at - old.started_at).total_seconds(), abs=0.01)

    resp = client.post(f"/api/runs/{failed}/retry")
    body = resp.get_json()
    assert resp.status_code == 200, body
    new_id = body["celery_task_id"]
    assert new_id != failed and body["retry_of"] == failed and body["queue"] == RETRY_QUEUE
    row = run_row(app, new_id)  # recorded by the send itself, at once
    assert row is not None and row.retry_of == failed
    assert (row.task_name, row.args, row.kwargs) == ("tests.add", ["one", 1], {})

    again = ended(app, new_id, "failed")  # it really ran: same task, same arguments, same failure
    assert "TypeError" in again.error
    stored = celery.backend.get_task_meta(new_id)
    assert stored["queue"] == RETRY_QUEUE  # the worker took it from the queue the first run was sent to

    assert client.get(f"/api/runs/{failed}").get_json()["retried_by"] == [new_id]
    assert client.get(f"/api/runs/{new_id}").get_json()["retry_of"] == failed
    listed = {r["celery_task_id"]: r for r in client.get("/api/runs?task=tests.add").get_json()["runs"]}
    assert listed[new_id]["retry_of"] == failed and listed[failed]["retry_of"] is None
    page = client.get(f"/runs/{new_id}").get_data(as_text=True)
    assert f'href="/runs/{failed}"' in page


def test_a_succeeded_run_sent_again_gives_the_same_result(worker_app):
    app, client = worker_app, api_client(worker_app, "operator")
    first = app.extensions["celery"].send_task("tests.add", args=[20, 22]).id
    ended(app, first, "completed")
    body = client.post(f"/api/runs/{first}/retry").get_json()
    assert body["queue"] == "celery"
    assert ended(app, body["celery_task_id"], "completed").result == "42"


def test_retry_refuses_an_open_run_with_409_and_an_unknown_one_with_404(make_app):
    app = make_app()
    client = api_client(app, "operator")
    parked = app.extensions["celery"].send_task("tests.add", args=[1, 2], queue="parked").id  # no worker takes it
    wait_for(lambda: run_row(app, parked), 5, "the parked run's row")
    resp = client.post(f"/api/runs/{parked}/retry")
    assert resp.status_code == 409
    assert resp.get_json()["status"] == "error" and "still pending" in resp.get_json()["message"]
    assert client.post("/api/runs/no-such-run/retry").status_code == 404
    assert api_client(app, "viewer").post(f"/api/runs/{parked}/retry").status_code == 403


def test_bulk_retry_sends_every_failed_run_of_a_filter_again(worker_app):
    app, client = worker_app, api_client(worker_app, "operator")
    celery = app.extensions["celery"]
    failures = [celery.send_task("tests.add", args=[f"x{i}", i]).id for i in range(3)]
    success = celery.send_task("tests.add", args=[1, 1]).id
    for cid in failures:
        ended(app, cid, "failed")
    ended(app, success, "completed")
    body = client.post("/api/runs/bulk", json={"action": "retry", "filter": {"status": "FAILURE"}}).get_json()
    assert (body["matched"], body["applies"], body["done"]) == (3, 3, 3), body
    assert sorted(run_row(app, new).retry_of for new in body["new_ids"]) == sorted(failures)
    for new in body["new_ids"]:
        ended(app, new, "failed")
