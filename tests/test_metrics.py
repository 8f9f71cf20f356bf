"""GET /metrics against a real worker, the cluster monitor and a real broker, read by Prometheus's own parser."""
import pytest
from prometheus_client.parser import text_string_to_metric_families

from panel.cluster import monitor
from tests.helpers import api_client, free_port, run_row, start_worker, wait_for


def scrape(client):
    resp = client.get("/metrics")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(resp.get_data(as_text=True)):  # raises on a malformed line
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted((k, str(v)) for k, v in labels.items()))))


@pytest.fixture
def watched(app):
    stop = monitor.start(app)
    yield app
    stop.set()


def test_metrics_show_the_live_worker_queue_lengths_runs_and_durations(watched):
    app = watched
    client = api_client(app, "viewer")
    before = scrape(client)
    assert value(before, "celery_workers_online") == 0 and value(before, "celery_beat_up") == 0
    assert value(before, "celery_broker_up") == 1
    start_worker(app)
    worker = wait_for(lambda: next((dict(k[1])["worker"] for k, v in scrape(client).items()
                                    if k[0] == "celery_worker_up" and v == 1), None), 30, "the worker's heartbeat")
    runs = [api_client(app, "operator").post("/api/registered-tasks/tests.add/send", json={"args": [2, 3]})
            for _ in range(3)]
    ids = [r.get_json()["celery_task_id"] for r in runs]
    wait_for(lambda: all((row := run_row(app, cid)) and row.state == "SUCCESS" for cid in ids), 30, "three runs")
    after = scrape(client)
    assert value(after, "celery_workers_online") == 1 and value(after, "celery_worker_up", worker=worker) == 1
    assert value(after, "celery_runs", state="SUCCESS") == 3
    assert value(after, "celery_run_duration_seconds_count") == 3
    assert value(after, "celery_run_duration_seconds_bucket", le="+Inf") == 3
    assert value(after, "celery_queue_length", queue="celery") == 0
    assert value(after, "celery_local_processes", program="worker") == 1


def test_metrics_count_messages_waiting_in_a_queue(app):
    client, operator = api_client(app, "viewer"), api_client(app, "operator")
    for _ in range(4):  # no worker: the messages wait (in a queue of their own: the suite's Redis is shared)
        assert operator.post("/api/registered-tasks/tests.add/send",
                             json={"args": [1, 1], "queue": "metrics-test"}).status_code == 200
    try:
        assert value(scrape(client), "celery_queue_length", queue="metrics-test") == 4
    finally:
        operator.post("/api/queues/metrics-test/purge", json={"confirm": True})


def test_metrics_answer_with_the_broker_down_and_say_so(make_app):
    app = make_app(CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")
    samples = scrape(api_client(app, "viewer"))
    assert value(samples, "celery_broker_up") == 0
    assert not any(name == "celery_queue_length" for name, _ in samples)
    assert value(samples, "celery_run_duration_seconds_count") == 0


def test_metrics_need_a_token_and_answer_401_not_a_login_page(app):
    resp = app.test_client().get("/metrics")
    assert resp.status_code == 401 and resp.is_json
