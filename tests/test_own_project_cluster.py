"""Queues, sending by name, metrics and alerts for your own attached project, on Redis and RabbitMQ."""
import pytest

from panel import background
from panel.health import alerts
from panel.runlog import outcomes
from tests.helpers import CELERY, PROJECT, api_client, ended, project_call, run_row, wait_for

WAIT_S = 40


@pytest.fixture(params=["redis", "rabbitmq"])
def attached_on(request, make_app, redis_server):
    """The sample project attached, with the panel's whole background running, on each broker."""
    broker = redis_server.url if request.param == "redis" else request.getfixturevalue("rabbitmq_url")
    app = make_app(CELERY_APP="proj", CELERY_WORKDIR=str(PROJECT), CELERY_BIN=CELERY, CELERY_BROKER_URL=broker,
                   CELERY_RESULT_BACKEND=redis_server.url, ALERT_FAILURES_THRESHOLD=2, ALERT_CHECK_INTERVAL_S=0.5)
    handle = background.start(app)
    try:
        wait_for(handle.acting.is_set, 10, "the background duties to start")
        assert api_client(app, "operator").post("/scheduler/start-celery/").get_json()["status"] == "success"
        yield app
    finally:
        handle.stop()


def _queue(client, name):
    return next((q for q in client.get("/api/queues").get_json()["queues"] if q["name"] == name), None)


def _metric(client, line_start):
    lines = client.get("/metrics").get_data(as_text=True).splitlines()
    return next((float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(line_start)), None)


def test_the_projects_queue_shows_its_consumer_and_waiting_runs_and_a_purge_ends_them(attached_on):
    operator = api_client(attached_on, "operator")
    [node] = wait_for(lambda: (q := _queue(operator, "celery")) and q["consumers"], WAIT_S,
                      "the project's worker to be listed as the queue's consumer")
    assert node == attached_on.extensions["supervisor"].nodename, "the worker the panel started"
    wait_for(lambda: _metric(operator, f'celery_worker_up{{worker="{node}"}}') == 1.0, WAIT_S,
             "the worker's up metric")
    assert operator.post("/scheduler/stop-celery/").get_json()["status"] == "success"
    waiting = [project_call(attached_on, "proj.add", "[1, 1]") for _ in range(2)]
    sent = operator.post("/api/registered-tasks/proj.add/send", json={"args": [2, 2]})
    assert sent.status_code == 200, sent.get_json()
    by_panel = sent.get_json()["celery_task_id"]
    assert run_row(attached_on, by_panel).status == "pending", "a send by name is recorded as it leaves"
    assert wait_for(lambda: _queue(operator, "celery")["messages"] == 3, 10, "three waiting messages")
    assert _metric(operator, 'celery_queue_length{queue="celery"}') == 3.0
    purged = operator.post("/api/queues/celery/purge", json={"confirm": True}).get_json()
    assert purged["removed"] == 3, purged
    assert _queue(operator, "celery")["messages"] == 0
    row = run_row(attached_on, by_panel)
    assert (row.status, row.error) == ("failed", outcomes.purged("celery").reason), "the log says it will not run"
    assert all(run_row(attached_on, task_id) is None for task_id in waiting), "never seen: no sent events"


def test_the_projects_failures_raise_the_failure_alert_and_count_in_the_metrics(attached_on):
    failed = [project_call(attached_on, "proj.fail", f'["boom {n}"]') for n in range(2)]
    for task_id in failed:
        assert ended(attached_on, task_id).state == "FAILURE"
    viewer = api_client(attached_on, "viewer")
    [alert] = wait_for(lambda: [a for a in viewer.get("/api/alerts").get_json()["alerts"]
                                if a["kind"] == alerts.FAILURES], WAIT_S, "the background's alert check to raise it")
    assert alert["body"].startswith("2 runs failed") and "proj.fail: 2" in alert["body"], alert
    assert _metric(viewer, 'celery_runs{state="FAILURE"}') == 2.0
