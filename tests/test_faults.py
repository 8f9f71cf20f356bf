"""Faults the panel must survive, each injected into real processes: Redis away, the database locked,
the panel restarted under a running Celery, two panel processes racing for the background duties."""
import threading
from pathlib import Path

import pytest

from app import create_app
from panel import background
from panel.host import processes
from panel.host.processes import BEAT, WORKER
from panel.runlog import recorder
from tests.helpers import (
    FAULTS,
    RedisServer,
    SqliteLock,
    TcpProxy,
    api_client,
    build_app,
    run_row,
    start_worker,
    stop_everything,
    wait_for,
)

LOCK_HELD_S = 13  # longer than SQLite's 10 s busy timeout: writes must be kept, not just waited out


def live(app, kind):
    return [r.pid for r in processes.scan(app.config["INSTANCE_PATH"])[kind]]


@pytest.fixture
def own_redis(tmp_path):
    """A Redis for this test alone, so it can be stopped and started again on the same port."""
    servers = [RedisServer(tmp_path / "redis-a")]
    yield servers
    for server in servers:
        server.stop()


def test_redis_stopped_mid_run_then_back_everything_recovers_without_a_panel_restart(make_app, own_redis, tmp_path):
    redis = own_redis[0]
    app = make_app(CELERY_BROKER_URL=redis.url, CELERY_RESULT_BACKEND=redis.url)
    start_worker(app)
    viewer, operator = api_client(app, "viewer"), api_client(app, "operator")
    sent = app.extensions["celery"].send_task("tests.sleep", args=[3])
    wait_for(lambda: (r := run_row(app, sent.id)) and r.status == "running", 30, "the run to start")
    redis.stop()
    assert viewer.get("/celery_status").status_code == 200
    status = viewer.get("/scheduler/celery-status/").get_json()
    assert status["worker"]["active"] is True  # the process table, not the broker, says so
    health = viewer.get("/api/health").get_json()
    assert health["broker"]["ok"] is False and health["status"] == "down" and health["database"]["ok"] is True
    refused = operator.post("/scheduler/start-celery/")
    assert refused.status_code == 503 and "broker unreachable" in refused.get_json()["message"]
    assert operator.post("/api/registered-tasks/tests.add/send", json={"args": [1, 1]}).status_code == 503
    assert viewer.get("/api/runs").status_code == 200  # each answer bounded by its own timeout (bench/: how fast)
    own_redis.append(RedisServer(tmp_path / "redis-b", port=redis.port))
    # Celery stores the result before it signals success: the run ends once the backend answers again.
    done = wait_for(lambda: (r := run_row(app, sent.id)) and r.status != "running" and r, 60, "the run to end")
    assert done.state == "SUCCESS"
    wait_for(lambda: viewer.get("/api/health").get_json()["broker"]["ok"], 30, "the panel to see Redis again")
    again = operator.post("/api/registered-tasks/tests.add/send", json={"args": [2, 2]})
    assert again.status_code == 200, again.get_json()
    cid = again.get_json()["celery_task_id"]
    wait_for(lambda: (r := run_row(app, cid)) and r.state == "SUCCESS", 90, "the worker to reconnect and run it")
    FAULTS.append(("Redis stopped mid-run, then started again",
                   "status and runs kept answering, controls 503 'broker unreachable'; the run in flight ended "
                   "SUCCESS once Redis was back; "
                   "worker reconnected and ran a new task, no panel restart"))


def spool_mentions(app, celery_task_id):
    """Whether a run's change waits in the spool: the database refused it (it met the lock)."""
    folder = Path(app.config["INSTANCE_PATH"]) / "run" / "spool"
    return any(celery_task_id in path.read_text(errors="replace") for path in folder.glob("*")) \
        if folder.is_dir() else False


def test_database_locked_status_answers_and_run_changes_land_once_it_is_free(make_app):
    app = make_app()
    start_worker(app)
    viewer = api_client(app, "viewer")
    assert viewer.get("/celery_status").status_code == 200  # token use noted before the lock
    stop = background.start(app)
    wait_for(stop.acting.is_set, 10, "the background loop")
    lock = SqliteLock(app, LOCK_HELD_S)
    try:
        with lock:
            resp = viewer.get("/celery_status")
            assert resp.status_code == 200 and resp.get_json()["running"] is False
            assert lock.held(), "the status waited for the lock to go"  # it came from the process table
            assert viewer.get("/scheduler/celery-status/").get_json()["worker"]["active"] is True
            sent = app.extensions["celery"].send_task("tests.add", args=[20, 22])  # every write of it meets the lock
            wait_for(lambda: spool_mentions(app, sent.id), LOCK_HELD_S, "the run's refused changes in the spool")
            assert lock.held(), "the lock went before the writes met it"  # they met it: it held them off
            lock.wait_out()
    finally:
        stop.stop()
    stop = background.start(app)  # the loop replays what the database refused
    try:
        done = wait_for(lambda: (r := run_row(app, sent.id)) and r.state == "SUCCESS" and r, 60,
                        "the kept run changes to reach the database")
        assert done.result == "42" and done.worker is not None and done.started_at is not None
        spool = recorder._spool
        wait_for(lambda: not spool.waiting(), 20, "every spool file to be written and removed")
    finally:
        stop.stop()
    FAULTS.append((f"SQLite locked for {LOCK_HELD_S} s (past the 10 s busy timeout)",
                   "status answered in <2 s from the process table; run changes kept in the spool, "
                   "written in order when the lock went"))


def test_postgresql_unreachable_status_answers_writes_wait_and_land_when_it_is_back(redis_server, pg_server,
                                                                                  tmp_path):
    proxy = TcpProxy(5432)
    url = pg_server.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    app = build_app(tmp_path / "instance", url, redis_server.url)
    handle = None
    try:
        start_worker(app)
        viewer, operator = api_client(app, "viewer"), api_client(app, "operator")
        assert viewer.get("/celery_status").status_code == 200  # the identities are confirmed once
        assert operator.get("/api/tasks").status_code == 200
        proxy.cut()
        assert viewer.get("/celery_status").status_code == 200
        assert viewer.get("/scheduler/celery-status/").get_json()["worker"]["active"] is True
        health = viewer.get("/api/health").get_json()
        assert health["database"]["ok"] is False and health["status"] == "down"
        refused = operator.post("/api/tasks", json={"name": "x", "task": "tests.add"})
        assert refused.status_code == 503 and "database is unreachable" in refused.get_json()["message"]
        sent = app.extensions["celery"].send_task("tests.add", args=[40, 2])
        wait_for(lambda: spool_mentions(app, sent.id), 60, "the run's writes to meet the dead database (kept)")
        proxy.restore()
        handle = background.start(app)
        done = wait_for(lambda: (r := run_row(app, sent.id)) and r.state == "SUCCESS" and r, 60,
                        "the kept run changes to reach PostgreSQL")
        assert done.result == "42" and done.worker is not None
    finally:
        if handle is not None:
            handle.stop()
        proxy.cut()
        stop_everything(app)
    FAULTS.append(("PostgreSQL unreachable (connections cut), then back",
                   "status answered from the process table, health said database down, a write got 503; "
                   "the run's changes were kept and written when PostgreSQL came back"))


def test_panel_restarted_while_celery_runs_finds_it_and_starts_nothing_twice(make_app):
    first = make_app()
    assert all(r.ok for r in first.extensions["supervisor"].start().values())
    pids = {kind: live(first, kind) for kind in (WORKER, BEAT)}
    again = create_app({**{k: first.config[k] for k in (
        "INSTANCE_PATH", "SQLALCHEMY_DATABASE_URI", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CELERY_IMPORTS",
        "STOP_GRACE_S", "START_TIMEOUT_S")}, "TESTING": True, "WATCHDOG": "worker,beat"})
    handle = background.start(again)
    try:
        wait_for(handle.acting.is_set, 10, "the new panel's background loop")
        status = api_client(again, "viewer").get("/scheduler/celery-status/").get_json()
        assert status["worker"]["pids"] == pids[WORKER] and status["beat"]["pids"] == pids[BEAT]
        started = api_client(again, "operator").post("/scheduler/start-celery/").get_json()
        assert "already running" in started["message"]
        ticks = again.extensions.get("watchdog_ticks", 0)  # the watchdog, switched on, looks and starts nothing
        wait_for(lambda: again.extensions.get("watchdog_ticks", 0) >= ticks + 3, 30, "three watchdog ticks")
        assert {kind: live(again, kind) for kind in (WORKER, BEAT)} == pids
    finally:
        handle.stop()
        stop_everything(again)
    FAULTS.append(("panel restarted while worker and Beat run (watchdog on)",
                   "both found again by PID; start said 'already running'; nothing started twice"))


def test_one_background_actor_per_instance_and_a_standby_takes_over(make_app):
    app = make_app()
    first, second = background.start(app), background.start(app)
    try:
        wait_for(lambda: first.acting.is_set() or second.acting.is_set(), 10, "one of them to act")
        standby = second if first.acting.is_set() else first
        wait_for(lambda: standby.tries >= 2, background.STANDBY_S * 4, "the standby to try for the lock twice")
        assert first.acting.is_set() != second.acting.is_set()  # it tried, and still exactly one acts
        acting, standing = (first, second) if first.acting.is_set() else (second, first)
        acting.stop()
        wait_for(standing.acting.is_set, background.STANDBY_S * 3, "the standby to take over")
    finally:
        first.stop()
        second.stop()
    FAULTS.append(("two panel processes on one instance", "one acts (file lock); the other took over when it stopped"))


def test_a_stop_that_comes_while_the_duties_start_ends_every_one_of_them(make_app, monkeypatch):
    app = make_app()
    before, seen, real_start = set(threading.enumerate()), set(), background.tally.start

    def slow_start(app):
        """The run tally starts late: the stop comes after the reconciler and the monitor started, before it."""
        seen.update(t for t in threading.enumerate() if t not in before)
        wait_for(handle.stop_event.is_set, 10, "the stop to come while the duties start")
        return real_start(app)

    monkeypatch.setattr(background.tally, "start", slow_start)
    handle = background.start(app)
    wait_for(lambda: seen, 10, "the duties to be starting")
    handle.stop()
    seen.update(t for t in threading.enumerate() if t not in before)
    assert {"run-reconciler", "cluster-monitor"} <= {t.name for t in seen}  # they ran when the stop came
    wait_for(lambda: not [t for t in seen if t.is_alive()], 10,
             lambda: f"every duty to end; alive: {sorted(t.name for t in seen if t.is_alive())}")
    assert not handle.acting.is_set()
    FAULTS.append(("a panel stopped while its background duties start",
                   "the stop waited for them to start, then ended every one (none left running)"))


def test_a_broker_that_dies_in_the_middle_of_a_request_is_a_503_not_a_500(make_app, tmp_path, monkeypatch):
    """The broker answered the route's guard, then went before the worker was asked (seen in CI at a suite's
    end): the answer is 503 with the cause, not an internal error."""
    from models import WorkerNode, db
    from panel.broker import connection
    own = RedisServer(tmp_path / "dying")
    app = make_app(CELERY_BROKER_URL=own.url, CELERY_RESULT_BACKEND=own.url)
    with app.app_context():
        db.session.add(WorkerNode(name="w1@host", hostname="host"))
        db.session.commit()
    own.stop()  # gone for good; the guard below still says it answered a moment ago
    monkeypatch.setattr(connection, "ping", lambda url, timeout_s=None: 1.0)
    resp = api_client(app, "viewer").get("/api/workers/w1@host")
    assert resp.status_code == 503, resp.get_data(as_text=True)[:300]
    assert resp.get_json()["message"].startswith("broker unreachable")
