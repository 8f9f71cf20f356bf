"""What faces the broker, on Redis and on RabbitMQ alike: the health probe, events, inspect and control,
queue lengths, consumers and purge, cancel, and results read back (on RabbitMQ from the panel's database)."""
import json

import psutil
import pytest

from panel import background
from panel.broker import connection
from panel.errors import BrokerDown
from panel.host.processes import WORKER
from panel.runlog import outcomes
from tests.helpers import api_client, executing_pid, free_port, process_gone, run_row, tool, wait_for

WAIT_S = 40


@pytest.fixture
def running(broker_app):
    """The worker started through the panel, with the panel's background (its cluster monitor) watching."""
    handle = background.start(broker_app)
    try:
        wait_for(handle.acting.is_set, 10, "the background duties to start")
        result = broker_app.extensions["supervisor"].start((WORKER,))[WORKER]
        assert result.ok, (result.message, result.log_tail)
        yield broker_app
    finally:
        handle.stop()


def node(app):
    return app.extensions["supervisor"].nodename


def test_the_health_view_probes_the_broker_and_says_how_long_it_took(broker_app):
    broker = api_client(broker_app, "viewer").get("/api/health").get_json()["broker"]
    assert broker["ok"] is True and broker["latency_ms"] > 0, broker
    scheme = broker_app.config["CELERY_BROKER_URL"].split("://")[0]
    dead = f"{scheme}://guest:secret@127.0.0.1:{free_port()}/0"
    with pytest.raises(BrokerDown, match=r"broker unreachable at .*\*\*\*@127\.0\.0\.1"):
        connection.ping(dead)


def test_the_worker_is_seen_from_its_events_and_answers_inspect_and_control(running):
    viewer, operator = api_client(running, "viewer"), api_client(running, "operator")
    wait_for(lambda: any(w["name"] == node(running) and w["online"] for w in viewer.get("/api/workers").get_json()[
        "workers"]), WAIT_S, "the worker online, from its heartbeat events")
    detail = viewer.get(f"/api/workers/{node(running)}").get_json()
    assert detail["no_reply"] == [], detail
    limited = operator.post("/api/registered-tasks/tests.add/rate-limit", json={"rate_limit": "100/m"})
    assert limited.status_code == 200 and limited.get_json()["applied_by"] == [node(running)], limited.get_json()


def test_a_queue_shows_its_consumer_and_waiting_runs_and_a_purge_says_how_many_went(running):
    operator = api_client(running, "operator")
    queue = lambda: next(q for q in operator.get("/api/queues").get_json()["queues"] if q["name"] == "celery")  # noqa: E731
    wait_for(lambda: queue()["consumers"] == [node(running)], WAIT_S, "the worker listed as the queue's consumer")
    running.extensions["supervisor"].stop((WORKER,))
    sent = [operator.post("/api/registered-tasks/tests.add/send", json={"args": [n, 1]}).get_json()["celery_task_id"]
            for n in range(3)]
    assert queue()["messages"] == 3
    purged = operator.post("/api/queues/celery/purge", json={"confirm": True}).get_json()
    assert purged["removed"] == 3 and queue()["messages"] == 0, purged
    assert {run_row(running, task_id).error for task_id in sent} == {outcomes.purged("celery").reason}


def test_a_run_is_cancelled_for_real_and_a_finished_one_read_back_from_the_result_backend(running):
    operator = api_client(running, "operator")
    send = lambda name, args: operator.post(f"/api/registered-tasks/{name}/send", json={"args": args}).get_json()[  # noqa: E731
        "celery_task_id"]
    added = send("tests.add", [2, 3])
    wait_for(lambda: (r := run_row(running, added)) and r.status == "completed", WAIT_S, "the run to complete")
    status = json.loads(tool(running, "task_manager.py", "--json", "status", added).stdout)
    assert (status["backend"]["state"], status["record"]["result"]) == ("SUCCESS", "5"), status
    slow = send("tests.sleep", [120])
    wait_for(lambda: (r := run_row(running, slow)) and r.status == "running", WAIT_S, "the run to start")
    celery = running.extensions["celery"]
    pid = wait_for(lambda: executing_pid(celery, node(running), slow), WAIT_S, "the worker to name the run's pool pid")
    created = psutil.Process(pid).create_time()
    body = operator.post(f"/scheduler/cancel-run/{slow}/").get_json()
    assert body["confirmed_stopped"] is True and body["stopped"] == [slow], body
    # Our own eyes, not the panel's verdict: the pool process that executed it is gone, and it did not finish.
    wait_for(lambda: process_gone(pid, created), 10, f"pool process {pid} that ran the cancelled task to end")
    assert celery.AsyncResult(slow).state != "SUCCESS"
    assert run_row(running, slow).error == outcomes.CANCELLED.reason
