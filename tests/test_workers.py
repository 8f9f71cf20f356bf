"""Workers and queues against real `celery worker` processes (two node names stand for two hosts)."""
import os
import signal
from datetime import timedelta
from types import SimpleNamespace

import pytest

from models import WorkerNode, db, utcnow
from panel.cluster import monitor, workers
from tests.helpers import Workers, api_client, build_app, free_port, listed_online, run_row, stop_everything, wait_for

EXIT_WAIT_S = 15


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, redis_server):
    """One panel app, its monitor thread and two workers: w1 (pool restarts on, the panel's default), w2 (off)."""
    folder = tmp_path_factory.mktemp("cluster")
    app = build_app(folder / "instance", f"sqlite:///{folder / 'panel.db'}", redis_server.url)
    stop_monitor = monitor.start(app)
    procs = Workers(app, folder)
    try:
        w1, _ = procs.start("w1")
        w2, _ = procs.start("w2", config=("worker_pool_restarts=False",))
        yield SimpleNamespace(app=app, procs=procs, w1=w1, w2=w2, op=api_client(app, "operator"),
                              viewer=api_client(app, "viewer"))
    finally:
        stop_monitor.set()
        procs.stop_all()
        stop_everything(app)


def detail(cluster, name):
    resp = cluster.viewer.get(f"/api/workers/{name}")
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def test_both_workers_are_listed_online_with_host_pid_pool_and_queues(cluster):
    def described():  # the monitor asks each new worker process for its info: no detail call needed
        workers = {w["name"]: w for w in cluster.viewer.get("/api/workers").get_json()["workers"]}
        return all(workers[n]["pool"]["type"] == "prefork" for n in (cluster.w1, cluster.w2)) and workers
    listed = wait_for(described, 15, "the list to show each worker's pool")
    for name in (cluster.w1, cluster.w2):
        assert listed[name]["pool"]["size"] == 2 and listed[name]["queues"] == ["celery"]
        assert listed[name]["registered_count"] >= 4
    for name, proc in ((cluster.w1, cluster.procs.procs[cluster.w1]), (cluster.w2, cluster.procs.procs[cluster.w2])):
        worker = listed[name]
        assert worker["status"] == "online" and worker["online"] is True
        assert worker["pid"] == proc.pid and worker["hostname"] == name.split("@", 1)[1]
        assert worker["heartbeat_age_s"] < 10 and worker["sw_ver"]


def test_detail_answers_pool_queues_and_registered_tasks_in_one_go(cluster):
    """Every part answered (bench/worker_detail.py shows it takes milliseconds, not a timeout)."""
    body = detail(cluster, cluster.w1)
    assert body["no_reply"] == [] and body["status"] == "online"
    assert body["pool"]["type"] == "prefork" and body["pool"]["size"] == 2
    assert [q["name"] for q in body["live"]["active_queues"]] == ["celery"] and body["queues"] == ["celery"]
    assert "tests.add" in body["registered"] and body["live"]["active"] == []
    assert body["live"]["stats"]["pid"] == cluster.procs.procs[cluster.w1].pid


def test_pool_grow_and_shrink_change_the_reported_pool_size(cluster):
    grown = cluster.op.post(f"/api/workers/{cluster.w1}/pool-grow", json={"n": 1})
    assert grown.status_code == 200 and grown.get_json()["reply"] == {"ok": "pool will grow"}
    wait_for(lambda: detail(cluster, cluster.w1)["pool"]["size"] == 3, 10, "the pool to have 3 processes")
    shrunk = cluster.op.post(f"/api/workers/{cluster.w1}/pool-shrink", json={"n": 1})
    assert shrunk.status_code == 200 and shrunk.get_json()["message"] == f"{cluster.w1}: pool will shrink"
    wait_for(lambda: detail(cluster, cluster.w1)["pool"]["size"] == 2, 10, "the pool to have 2 processes")


def test_pool_restart_and_autoscale_report_the_workers_own_answer(cluster):
    done = cluster.op.post(f"/api/workers/{cluster.w1}/pool-restart")
    assert done.status_code == 200 and done.get_json()["reply"] == {"ok": "reload started"}
    refused = cluster.op.post(f"/api/workers/{cluster.w2}/pool-restart")
    # What the worker would raise on (an ERROR traceback in its log) is refused by the panel, from its conf and stats.
    assert refused.status_code == 409 and "worker_pool_restarts" in refused.get_json()["message"]
    assert refused.get_json()["reply"]["sent"] is False
    no_autoscale = cluster.op.post(f"/api/workers/{cluster.w2}/autoscale", json={"max": 3, "min": 1})
    assert no_autoscale.status_code == 409 and "--autoscale" in no_autoscale.get_json()["reply"]["error"]


def test_an_ad_hoc_send_is_recorded_and_completes(cluster):
    resp = cluster.op.post("/api/registered-tasks/tests.add/send", json={"args": [2, 3], "kwargs": {}})
    assert resp.status_code == 200, resp.get_json()
    celery_id = resp.get_json()["celery_task_id"]
    row = wait_for(lambda: (r := run_row(cluster.app, celery_id)) and r.status == "completed" and r, 20, "the run")
    assert row.result == "5" and row.worker in (cluster.w1, cluster.w2) and row.args == [2, 3]


def test_registered_tasks_carry_signature_doc_and_the_workers_that_have_them(cluster):
    detail(cluster, cluster.w1), detail(cluster, cluster.w2)  # both caches filled
    tasks = {t["name"]: t for t in cluster.viewer.get("/api/registered-tasks").get_json()["tasks"]}
    assert tasks["tests.add"]["signature"] == "(x, y)"
    doc = "Stands for a task stuck in a C call: it does not react to SIGTERM."
    assert tasks["tests.sleep_ignoring_term"]["doc"] == doc
    assert tasks["tests.add"]["workers"] == sorted([cluster.w1, cluster.w2])
    assert not any(name.startswith("celery.") for name in tasks)


def test_rate_and_time_limits_are_applied_by_every_worker(cluster):
    try:
        resp = cluster.op.post("/api/registered-tasks/tests.add/rate-limit", json={"rate_limit": "10/m"})
        body = resp.get_json()
        assert resp.status_code == 200 and body["applied_by"] == sorted([cluster.w1, cluster.w2]), body
        assert body["replies"][cluster.w1] == {"ok": "new rate limit set successfully"}
        assert "tests.add [rate_limit=10/m]" in detail(cluster, cluster.w2)["live"]["registered"]
        timed = cluster.op.post("/api/registered-tasks/tests.add/time-limit", json={"soft": 5, "hard": 10})
        assert timed.status_code == 200
        assert timed.get_json()["replies"][cluster.w2] == {"ok": "time limits set successfully"}
        entry = next(e for e in detail(cluster, cluster.w1)["live"]["registered"] if e.startswith("tests.add ["))
        assert "time_limit=10.0" in entry and "soft_time_limit=5.0" in entry
    finally:
        cluster.op.post("/api/registered-tasks/tests.add/rate-limit", json={"rate_limit": "0"})
        cluster.op.post("/api/registered-tasks/tests.add/time-limit", json={"soft": None, "hard": None})


def test_purge_removes_the_waiting_messages_and_says_how_many(cluster):
    for n in range(3):
        sent = cluster.op.post("/api/registered-tasks/tests.add/send", json={"args": [n, n], "queue": "parked"})
        assert sent.status_code == 200, sent.get_json()
    queues = {q["name"]: q for q in cluster.viewer.get("/api/queues").get_json()["queues"]}
    assert queues["parked"] == {"name": "parked", "messages": 3, "consumers": [], "paused": False}
    assert sorted(queues["celery"]["consumers"]) == sorted([cluster.w1, cluster.w2])
    unconfirmed = cluster.op.post("/api/queues/parked/purge", json={})
    assert unconfirmed.status_code == 400 and unconfirmed.get_json()["field"] == "confirm"
    purged = cluster.op.post("/api/queues/parked/purge", json={"confirm": True})
    assert purged.status_code == 200 and purged.get_json()["removed"] == 3
    queues = {q["name"]: q for q in cluster.viewer.get("/api/queues").get_json()["queues"]}
    assert queues["parked"]["messages"] == 0
    assert cluster.op.post("/api/queues/no-such-queue/purge", json={"confirm": True}).status_code == 404


def test_a_silent_worker_shows_no_reply_but_stays_online_by_heartbeat(cluster):
    proc = cluster.procs.procs[cluster.w2]
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        body = detail(cluster, cluster.w2)
        assert body["status"] == "online", "one missed reply is not a dead worker"
        assert body["no_reply"] == sorted(workers.DETAIL_CALLS) and body["live"]["stats"] == "no reply"
        grow = cluster.op.post(f"/api/workers/{cluster.w2}/pool-grow", json={"n": 1})
        assert grow.status_code == 504 and grow.get_json()["reply"] == "no reply"
        assert detail(cluster, cluster.w1)["no_reply"] == [], "the other worker must answer meanwhile"
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    wait_for(lambda: detail(cluster, cluster.w2)["no_reply"] == [], 10, "w2 to answer again")
    cluster.op.post(f"/api/workers/{cluster.w2}/pool-shrink", json={"n": 1})  # the grow it got on waking


def test_shutdown_through_the_api_stops_one_worker_and_leaves_the_other(cluster):
    w3, proc = cluster.procs.start("w3", "--autoscale", "3,1")
    scaled = cluster.op.post(f"/api/workers/{w3}/autoscale", json={"max": 4, "min": 2})
    assert scaled.status_code == 200 and scaled.get_json()["reply"] == {"ok": "autoscale now max=4 min=2"}
    resp = cluster.op.post(f"/api/workers/{w3}/shutdown")
    assert resp.status_code == 200 and resp.get_json()["reply"] == {"ok": "pong"}
    assert proc.wait(timeout=EXIT_WAIT_S) == 0
    wait_for(lambda: not listed_online(cluster.app, w3), 10, "w3 to be listed offline")
    listed = {w["name"]: w for w in cluster.viewer.get("/api/workers").get_json()["workers"]}
    assert listed[w3]["status"] == "offline" and listed[w3]["offline_at"]
    assert listed[cluster.w1]["status"] == "online"
    assert detail(cluster, cluster.w1)["no_reply"] == []
    silent = detail(cluster, w3)
    assert silent["status"] == "offline" and silent["live"]["stats"] == "no reply"


@pytest.mark.parametrize("path, payload, field", [
    ("/api/workers/{w}/pool-grow", {"n": 0}, "n"),
    ("/api/workers/{w}/pool-shrink", {"n": "two"}, "n"),
    ("/api/workers/{w}/autoscale", {"min": 1}, "max"),
    ("/api/registered-tasks/tests.add/send", {"args": {"x": 1}}, "args"),
    ("/api/registered-tasks/tests.add/send", {"kwargs": [1]}, "kwargs"),
    ("/api/registered-tasks/tests.add/rate-limit", {"rate_limit": "fast"}, "rate_limit"),
    ("/api/registered-tasks/tests.add/time-limit", {"soft": 10, "hard": 5}, "soft"),
    ("/api/registered-tasks/tests.add/time-limit", {"soft": -1}, "soft"),
])
def test_bad_input_is_refused_with_400_naming_the_field(cluster, path, payload, field):
    resp = cluster.op.post(path.format(w=cluster.w1), json=payload)
    assert resp.status_code == 400 and resp.get_json()["field"] == field


def test_malformed_json_and_unknown_names_are_refused(cluster):
    bad = cluster.op.post(f"/api/workers/{cluster.w1}/pool-grow", data="{nope", content_type="application/json")
    assert bad.status_code == 400
    assert cluster.viewer.get("/api/workers/nobody@nowhere").status_code == 404
    assert cluster.op.post("/api/workers/nobody@nowhere/shutdown").status_code == 404
    assert cluster.op.post("/api/registered-tasks/no.such.task/send", json={}).status_code == 404
    assert cluster.op.post("/api/registered-tasks/celery.ping/send", json={}).status_code == 404
    assert cluster.viewer.post(f"/api/workers/{cluster.w1}/shutdown").status_code == 403


def test_a_dead_broker_answers_503_fast_while_the_list_still_reads_the_database(make_app):
    app = make_app(CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")
    with app.app_context():
        db.session.add(WorkerNode(name="w9@far", hostname="far", pid=1, last_heartbeat_at=utcnow()))
        db.session.commit()
    client = api_client(app, "operator")
    assert client.get("/api/workers").get_json()["workers"][0]["status"] == "online"
    for method, path, payload in (("GET", "/api/workers/w9@far", None), ("POST", "/api/workers/w9@far/pool-grow", {}),
                                  ("POST", "/api/workers/w9@far/shutdown", None), ("GET", "/api/queues", None),
                                  ("POST", "/api/queues/celery/purge", {"confirm": True}),
                                  ("POST", "/api/registered-tasks/tests.add/send", {"args": [1, 2]})):
        resp = client.open(path, method=method, json=payload)
        assert resp.status_code == 503 and resp.get_json()["status"] == "error", (path, resp.get_json())


def test_offline_rule_is_an_offline_event_or_three_missed_heartbeats_plus_grace():
    now = utcnow()
    row = lambda online, age_s, freq=2.0: SimpleNamespace(  # noqa: E731
        online=online, heartbeat_freq_s=freq, last_heartbeat_at=now - timedelta(seconds=age_s))
    assert workers.is_online(row(True, 7.9), now)
    assert not workers.is_online(row(True, 8.1), now)
    assert workers.is_online(row(True, 30, freq=10.0), now)
    assert not workers.is_online(row(False, 0.1), now)
    assert not workers.is_online(SimpleNamespace(online=True, heartbeat_freq_s=2.0, last_heartbeat_at=None), now)
