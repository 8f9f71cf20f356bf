"""PROCESS_MANAGER=supervisor: this host's worker and Beat are programs of a real supervisord (running the panel's own
start scripts, as docs/deployment.md configures them), and the panel's buttons, status, log, cancel and restart
history go through it. Supervisor restarts a crash alone; the panel follows and records it."""
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest

from models import ProcessEvent, db
from panel import background
from panel.config import ROOT
from panel.errors import SupervisorUnreachable
from panel.supervision import crashlog, watchdog
from tests.helpers import CELERY, PROJECT, WATCHDOG_FAST, api_client, free_port, project_call, run_row, wait_for
from tests.supervisord_harness import PROGRAMS, SupervisordHost

NODE = f"supervised@{socket.gethostname()}"  # this host: the panel reads -E off its command line
READY_WAIT_S = 90  # a worker's start on two shared cores, with a CI run beside it
HOLD_S = 10  # a stop through the panel must still hold this long after


@pytest.fixture
def supervised(make_app):
    """A panel attached to the sample project whose worker and Beat a supervisord of its own runs, both RUNNING."""
    folder = Path(tempfile.mkdtemp(prefix="sv-", dir="/tmp"))
    port = free_port()
    url = f"http://local-admin:local-S3cret-pw@127.0.0.1:{port}"
    app = make_app(PROCESS_MANAGER="supervisor", SUPERVISOR_URL=url, SUPERVISOR_PROGRAMS=dict(PROGRAMS),
                   CELERY_APP="proj", CELERY_WORKDIR=str(PROJECT), CELERY_BIN=CELERY, WORKER_NODENAME=NODE,
                   WORKER_CONCURRENCY=1, **WATCHDOG_FAST)
    programs = {PROGRAMS["worker"]: f"{ROOT}/start_celery_worker.sh --foreground",
                PROGRAMS["beat"]: f"{ROOT}/start_celery_beat.sh --foreground"}
    host = SupervisordHost(folder, "local", app.config["CELERY_BROKER_URL"], programs,
                           env=app.extensions["supervisor"].child_env(), port=port)
    app.supervisord = host
    try:
        for program in programs:
            wait_for(lambda p=program: host.running(p), READY_WAIT_S, f"{program} RUNNING under supervisord")
        yield app
    finally:
        host.stop()
        shutil.rmtree(folder, ignore_errors=True)


def copies():
    """Main processes of the node in the process table, however they were started."""
    found = []
    for proc in psutil.process_iter(["cmdline", "ppid"]):
        cmdline = proc.info["cmdline"] or []
        if "worker" in cmdline and NODE in cmdline:
            try:
                if NODE not in psutil.Process(proc.info["ppid"]).cmdline():  # a pool process is not a copy
                    found.append(proc.pid)
            except psutil.Error:
                continue
    return found


def history(app, **where):
    with app.app_context():
        rows = db.session.query(ProcessEvent).filter_by(**where).order_by(ProcessEvent.id).all()
        db.session.remove()
    return rows


def test_the_status_pids_and_log_are_supervisors_and_the_watchdog_stands_down(supervised):
    viewer = api_client(supervised, "viewer")
    status = viewer.get("/scheduler/celery-status/").get_json()
    worker_pid = supervised.supervisord.running(PROGRAMS["worker"])
    assert status["manager"] == "supervisor" and status["status"] == "running"
    assert (status["worker"]["state"], status["worker"]["pids"]) == ("RUNNING", [worker_pid])
    assert status["worker"]["pool_processes"] == 1  # WORKER_CONCURRENCY=1, its prefork child under it
    assert status["worker"]["uptime_s"] >= 0 and status["beat"]["uptime_s"] >= 0  # Supervisor's own
    assert status["beat"]["pids"] == [supervised.supervisord.running(PROGRAMS["beat"])]
    [local] = status["hosts"]  # this host is the pane's first, under this machine's name
    assert local["reachable"] and [(p["name"], p["state"]) for p in local["programs"]] == [
        ("worker", "RUNNING"), ("beat", "RUNNING")]
    legacy = viewer.get("/celery_status").get_json()
    assert legacy["running"] and legacy["pids"] == status["beat"]["pids"]
    assert legacy["hosts"][0]["name"] == local["name"]
    log = viewer.get("/api/logs/worker?lines=200").get_json()
    assert log["path"] == "supervisord: celery-worker" and any(NODE in line for line in log["lines"]), log
    refused = api_client(supervised, "operator").post("/api/watchdog/worker", json={"enabled": True})
    assert refused.status_code == 409 and "Supervisor restarts it" in refused.get_json()["message"]
    assert "local-S3cret-pw" not in viewer.get("/scheduler/celery-status/").get_data(as_text=True)


def test_a_stop_through_the_panel_holds_and_a_start_brings_back_one_copy(supervised):
    handle = background.start(supervised)  # the follower looks every 0.3 s all along
    try:
        operator = api_client(supervised, "operator")
        stopped = operator.post("/scheduler/stop-celery/")
        assert stopped.status_code == 200, stopped.get_json()
        assert (stopped.get_json()["workers_killed"], stopped.get_json()["beats_killed"]) == (1, 1)
        assert supervised.supervisord.client.program(PROGRAMS["worker"])["state"] == "STOPPED"
        wait_for(lambda: copies() == [], 10, "the worker's processes gone")
        held = wait_for(lambda: supervised.extensions.get("watchdog_ticks", 0) >= 5 and supervised.extensions[
            "watchdog_ticks"], 30, "the follower to look a few times")
        held_until = time.monotonic() + HOLD_S
        while time.monotonic() < held_until:  # Supervisor does not bring it back, and the panel starts no copy
            assert supervised.supervisord.client.program(PROGRAMS["worker"])["state"] == "STOPPED"
            assert copies() == []
            time.sleep(0.5)
        assert supervised.extensions["watchdog_ticks"] > held
        started = operator.post("/scheduler/start-celery/")
        assert started.status_code == 200, started.get_json()
        pid = supervised.supervisord.running(PROGRAMS["worker"])
        assert started.get_json()["worker_pids"] == [pid] and "started by Supervisor" in started.get_json()["message"]
        again = operator.post("/scheduler/start-celery/").get_json()
        assert again["worker_pids"] == [pid] and "already running" in again["message"]
        assert copies() == [pid]
    finally:
        handle.stop()
    actions = [(e.program, e.action, e.outcome) for e in history(supervised) if e.cause == "request"]
    assert ("worker", "stop", "ok") in actions and ("worker", "start", "ok") in actions
    assert not history(supervised, action="crash"), "a stop through the panel taken for a crash"


def test_a_worker_killed_while_the_panel_is_away_is_restarted_by_supervisor_and_recorded_after(supervised):
    handle = background.start(supervised)
    old = supervised.supervisord.running(PROGRAMS["worker"])
    slow = project_call(supervised, "proj.slow", "[300]")
    try:
        wait_for(lambda: (r := run_row(supervised, slow)) and r.status == "running", 60, "the run to start")
        wait_for(lambda: dog(supervised)["pids"] == [old], 30, "the follower to know the worker's PID")
    finally:
        handle.stop()  # the panel goes away (a deploy), its background duties with it
    wait_for(_watch_ended, 10, "the follower to stop")
    os.kill(old, signal.SIGKILL)
    new = wait_for(lambda: (pid := supervised.supervisord.running(PROGRAMS["worker"])) not in (None, old) and pid,
                   READY_WAIT_S, "Supervisor to start the worker again by itself")
    handle = background.start(supervised)  # the panel is back
    try:
        [crash] = wait_for(lambda: history(supervised, action="crash"), 30, "the crash in the restart history")
        assert crash.exit_status == -9 and crash.actor == "supervisord" and crash.pids == [old], crash.message
        assert "killed by SIGKILL" in crash.message and f"Supervisor started it again (PID {new})" in crash.message
        row = wait_for(lambda: (r := run_row(supervised, slow)) and r.status == "failed" and r, 30, "the run lost")
        assert "SIGKILL" in row.error or "lost" in row.error, row.error
        status = api_client(supervised, "viewer").get("/scheduler/celery-status/").get_json()
        assert status["worker"]["pids"] == [new] and copies() == [new]
        assert not history(supervised, actor="watchdog"), "the panel's watchdog acted beside Supervisor"
    finally:
        handle.stop()


def test_beat_restarted_through_the_panel_gets_a_new_pid_and_no_crash_row(supervised):
    handle = background.start(supervised)
    try:
        old = supervised.supervisord.running(PROGRAMS["beat"])
        wait_for(lambda: dog(supervised, "beat")["pids"] == [old], 30, "the follower to know Beat's PID")
        answer = api_client(supervised, "operator").post("/restart_celery_beat")
        body = answer.get_json()
        assert answer.status_code == 200 and body["success"], body
        assert body["old_pids"] == [old] and body["new_pids"] == [supervised.supervisord.running(PROGRAMS["beat"])]
        new = body["new_pids"][0]
        wait_for(lambda: dog(supervised, "beat")["pids"] == [new], 30, "the follower to see the new PID")
    finally:
        handle.stop()
    assert not history(supervised, action="crash"), "a restart through the panel taken for a crash"


def test_a_running_task_cancelled_under_supervisor_really_stops_its_pool_process(supervised):
    handle = background.start(supervised)
    try:
        slow = project_call(supervised, "proj.slow", "[300]")
        wait_for(lambda: (r := run_row(supervised, slow)) and r.status == "running", 60, "the run to start")
        main = supervised.supervisord.running(PROGRAMS["worker"])
        [pool] = psutil.Process(main).children()
        body = api_client(supervised, "operator").post(f"/scheduler/cancel-run/{slow}/").get_json()
        assert body["confirmed_stopped"] is True and body["stopped"] == [slow], body
        assert not pool.is_running() or pool.status() == psutil.STATUS_ZOMBIE, "the pool process still runs"
        assert supervised.supervisord.running(PROGRAMS["worker"]) == main, "a cancel stops the task, not the worker"
    finally:
        handle.stop()


def test_with_its_supervisord_away_the_status_says_unknown_and_a_start_is_503(make_app):
    app = make_app(PROCESS_MANAGER="supervisor", SUPERVISOR_URL=f"http://u:Hush-9@127.0.0.1:{free_port()}")
    status = api_client(app, "viewer").get("/scheduler/celery-status/")
    assert status.status_code == 200
    worker = status.get_json()["worker"]
    assert (worker["state"], worker["active"]) == ("UNKNOWN", False)
    started = api_client(app, "operator").post("/scheduler/start-celery/")
    assert started.status_code == 503 and "is unreachable: Connection refused" in started.get_json()["message"]
    assert "Hush-9" not in status.get_data(as_text=True) + started.get_data(as_text=True)
    with pytest.raises(SupervisorUnreachable):
        app.extensions["supervisor"].host.scan()


def test_the_log_less_the_life_supervisor_started_is_the_dead_workers():
    old = ["celery@a v5.4.0 (opalescent)", "[2026-12-04 10:00:00,100: INFO/MainProcess] Connected to redis://",
           "[2026-12-04 10:00:05,000: INFO/MainProcess] Task t[1] received",
           "[2026-12-04 10:00:07,900: CRITICAL/MainProcess] Unrecoverable error: RecursionError('x')",
           "RecursionError: maximum recursion depth exceeded"]
    new = ["celery@a v5.4.0 (opalescent)", "[2026-12-04 10:00:08,700: INFO/MainProcess] Connected to redis://"]
    started = crashlog._stamp("[2026-12-04 10:00:07,000") // 1  # Supervisor's whole second, within the old life's last
    text = "\n".join(old + new)
    assert crashlog.before(text, started).splitlines() == old
    assert crashlog.death(crashlog.before(text, started)).held == (("1", "t"),)
    assert crashlog.before("\n".join(old), started + 60) == "\n".join(old)  # no new life yet: all of it
    assert crashlog.before("no stamps at all", started) == "no stamps at all"


def dog(app, kind="worker"):
    with app.app_context():
        return watchdog.view()[kind]


def _watch_ended():
    return not any(t.name == "watchdog" and t.is_alive() for t in threading.enumerate())


def test_the_dashboard_shows_this_hosts_supervisor_card_and_no_watchdog_switch(supervised, logged_in):
    from playwright.sync_api import expect

    from tests.helpers import ARTIFACTS, UI_WAIT_MS
    handle = background.start(supervised)  # the cluster monitor sees the node through its events
    try:
        page = logged_in(supervised, "op", "operator", width=1200, height=900)
        expect(page.locator("#worker-badge")).to_have_text("✓ Active", timeout=UI_WAIT_MS)
        card = page.locator("#hosts-card")
        expect(card).to_be_visible(timeout=UI_WAIT_MS)
        pid = supervised.supervisord.running(PROGRAMS["worker"])
        expect(card).to_contain_text(f"PID {pid}", timeout=UI_WAIT_MS)
        expect(page.locator("#health-card")).to_contain_text("restarted by this host's Supervisor after a crash")
        assert page.locator(".watchdog-switch").count() == 0
        page.select_option("#poll-rate", "2000")  # the node appears at a poll after the monitor's first event
        expect(card).to_contain_text(f"{NODE} ● online", timeout=60_000)  # the monitor's node, matched by its PID
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-supervised.png"), full_page=True)
    finally:
        handle.stop()
