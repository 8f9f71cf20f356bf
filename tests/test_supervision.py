"""Process supervision against real celery worker and beat processes, real signals and psutil."""
import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

from models import RUNNING, Run, db
from panel.config import ROOT
from panel.host import oscontrol, processes
from panel.host.processes import BEAT, WORKER, ProcessRef
from tests.helpers import api_client, celery_main_pids, wait_for


def child_env(app, **extra):
    env = app.extensions["supervisor"].child_env()
    env.update(extra)
    return env


def scan(app):
    return processes.scan(app.config["INSTANCE_PATH"])


def test_start_celery_starts_worker_and_beat_and_status_reports_them(app, client):
    resp = client.post("/scheduler/start-celery/")
    body = resp.get_json()
    assert resp.status_code == 200, body
    assert body["status"] == "success"
    assert len(body["worker_pids"]) == 1 and len(body["beat_pids"]) == 1
    for pid in body["worker_pids"] + body["beat_pids"]:
        assert psutil.pid_exists(pid)

    status = client.get("/scheduler/celery-status/").get_json()
    assert status["status"] == "running"
    assert status["worker"]["active"] and status["worker"]["pids"] == body["worker_pids"]
    assert status["beat"]["active"] and status["beat"]["pids"] == body["beat_pids"]
    started = psutil.Process(body["worker_pids"][0]).create_time()
    assert 0 <= status["worker"]["uptime_s"] <= time.time() - started + 1, "its age from the process table"
    assert status["manager"] == "panel" and status["hosts"] == []
    assert client.get("/celery_status").get_json() == {"running": True, "pids": body["beat_pids"], "count": 1,
                                                      "hosts": []}


def test_pool_children_are_reported_under_their_worker_not_as_workers(app, client):
    client.post("/scheduler/start-celery/")
    worker = client.get("/scheduler/celery-status/").get_json()["worker"]
    main = worker["pids"][0]
    real_children = {p.pid for p in psutil.Process(main).children()}
    assert worker["count"] == 1 and celery_main_pids(app.config["INSTANCE_PATH"])[WORKER] == [main]  # psutil agrees
    assert worker["pool_processes"] == app.config["WORKER_CONCURRENCY"] == 2
    assert set(worker["pool_pids"][str(main)]) == real_children


def test_second_start_duplicates_nothing(app, client):
    first = client.post("/scheduler/start-celery/").get_json()
    second = client.post("/scheduler/start-celery/").get_json()
    assert second["status"] == "success"
    assert second["worker_pids"] == first["worker_pids"] and second["beat_pids"] == first["beat_pids"]
    assert "already running" in second["message"]
    assert len(scan(app)[BEAT]) == 1 and len(scan(app)[WORKER]) == 1
    # psutil's own count, not the panel's scanner: one main worker and one Beat, those the first start made
    assert celery_main_pids(app.config["INSTANCE_PATH"]) == {WORKER: first["worker_pids"], BEAT: first["beat_pids"]}


def test_two_concurrent_start_requests_leave_exactly_one_beat_and_one_worker(app):
    answers = []
    clients = [api_client(app), api_client(app)]  # users and tokens made before the race

    def start(client):
        answers.append(client.post("/scheduler/start-celery/"))

    threads = [threading.Thread(target=start, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(a.status_code for a in answers) in ([200, 200], [200, 409])
    table = scan(app)
    assert len(table[BEAT]) == 1 and len(table[WORKER]) == 1
    counted = celery_main_pids(app.config["INSTANCE_PATH"])  # psutil's own count, not the panel's scanner
    assert {kind: len(pids) for kind, pids in counted.items()} == {WORKER: 1, BEAT: 1}, counted


def test_stop_celery_stops_both_and_counts_main_processes_only(app, client):
    started = client.post("/scheduler/start-celery/").get_json()
    pool = client.get("/scheduler/celery-status/").get_json()["worker"]["pool_pids"]
    resp = client.post("/scheduler/stop-celery/")
    body = resp.get_json()
    assert resp.status_code == 200, body
    assert body["status"] == "success"
    assert body["workers_killed"] == 1 and body["beats_killed"] == 1
    every_pid = started["worker_pids"] + started["beat_pids"] + [p for ps in pool.values() for p in ps]
    assert not [p for p in every_pid if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    status = client.get("/scheduler/celery-status/").get_json()
    assert status["status"] == "stopped" and not status["worker"]["active"] and not status["beat"]["active"]


def test_hand_started_beat_is_found_and_the_script_refuses_a_second(app, client):
    env = child_env(app)
    first = subprocess.run([str(ROOT / "start_celery_beat.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert "PID" in first.stdout and "beat.log" in first.stdout
    pid = int(first.stdout.split("PID ")[1].split(")")[0])
    status = client.get("/celery_status").get_json()
    assert status == {"running": True, "pids": [pid], "count": 1, "hosts": []}

    second = subprocess.run([str(ROOT / "start_celery_beat.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert second.returncode == 1
    assert "already running" in second.stderr
    assert client.get("/celery_status").get_json()["count"] == 1


def test_restart_beat_reports_old_and_new_pids(app, client):
    client.post("/scheduler/start-celery/")
    old = client.get("/celery_status").get_json()["pids"]
    resp = client.post("/restart_celery_beat")
    body = resp.get_json()
    assert resp.status_code == 200, body
    assert body["success"] is True and body["old_pids"] == old
    assert len(body["new_pids"]) == 1 and body["new_pids"] != old
    assert not psutil.pid_exists(old[0]) or psutil.Process(old[0]).status() == psutil.STATUS_ZOMBIE
    assert client.get("/celery_status").get_json()["pids"] == body["new_pids"]


def test_restart_when_beat_is_not_running_is_200_with_instructions(client):
    resp = client.post("/restart_celery_beat")
    assert resp.status_code == 200
    assert resp.get_json() == {
        "success": False, "not_running": True, "message": "Celery Beat is not currently running",
        "instructions": "Please start Celery Beat manually using: ./start_celery_beat.sh",
        "manual_start_command": "./start_celery_beat.sh"}
    assert client.get("/celery_status").get_json() == {"running": False, "pids": [], "count": 0, "hosts": []}


def _spawn_decoy(argv, cwd, env):
    return subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


@pytest.fixture
def decoys(app, tmp_path):
    """Processes whose command lines mention celery, worker or beat without being ours."""
    fake = tmp_path / "celery"
    fake.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(120)\n")
    fake.chmod(0o755)
    log = tmp_path / "worker.log"
    log.write_text("celery worker beat\n")
    ours = child_env(app)
    other_instance = dict(ours, PANEL_INSTANCE_PATH=str(tmp_path / "another-instance"))
    procs = [
        _spawn_decoy([str(fake), "-A", "celery_app", "worker"], str(tmp_path), ours),      # right argv, wrong folder
        _spawn_decoy([str(fake), "-A", "celery_app", "beat"], str(ROOT), other_instance),  # another instance's
        _spawn_decoy(["tail", "-f", str(log)], str(ROOT), ours),
        _spawn_decoy(["grep", "celery -A celery_app worker beat"], str(ROOT), ours),
        _spawn_decoy(["bash", "-c", "sleep 120; echo celery -A celery_app beat"], str(ROOT), ours),
        _spawn_decoy(["bash", "-c", 'exec -a "celery -A celery_app worker" sleep 120'], str(ROOT), ours),
    ]
    yield procs
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # each decoy leads its own session; take its children too
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def _settled(proc):
    """A decoy's command line is its final one once exec is done (the fake celery runs its interpreter)."""
    try:
        return proc.poll() is None and psutil.Process(proc.pid).cmdline()
    except psutil.Error:
        return False


def test_decoys_are_neither_matched_nor_signalled(app, client, decoys):
    wait_for(lambda: all(_settled(p) for p in decoys), 10, "every decoy to be running its final command")
    table = scan(app)
    decoy_pids = {p.pid for p in decoys}
    assert not decoy_pids & {r.pid for refs in table.values() for r in refs}
    client.post("/scheduler/start-celery/")
    body = client.post("/scheduler/stop-celery/").get_json()
    assert body["workers_killed"] == 1 and body["beats_killed"] == 1
    assert all(p.poll() is None for p in decoys), "a decoy was signalled"


ORPHANING_WORKER = """\
import os, sys, time
child = os.fork()
if child == 0:  # stays as the pool child does: forked, the worker's command line, no exec
    time.sleep(120)
    os._exit(0)
print(child, flush=True)
sys.stdin.read()  # the test closes stdin: this 'worker' dies and leaves its child behind
os._exit(0)
"""


@pytest.fixture
def orphaning_worker(app, tmp_path):
    """A process with our worker's command line that forks a child, then dies on cue, leaving the child."""
    fake = tmp_path / "celery"
    fake.write_text(f"#!{sys.executable}\n{ORPHANING_WORKER}")
    fake.chmod(0o755)
    proc = subprocess.Popen([str(fake), "-A", "celery_app", "worker"], cwd=str(ROOT), env=child_env(app),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
    yield proc, int(proc.stdout.readline())
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group outlives its leader: this takes the child left behind
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def test_a_pool_child_left_behind_by_a_killed_worker_is_not_taken_for_a_worker(app, orphaning_worker):
    worker, child = orphaning_worker
    [ref] = wait_for(lambda: (refs := scan(app)[WORKER]) and refs[0].children and refs, 10, "the worker and its child")
    assert (ref.pid, ref.children) == (worker.pid, (child,))
    worker.stdin.close()
    worker.wait(timeout=10)
    assert psutil.Process(child).ppid() != worker.pid, "the child is an orphan now"
    assert psutil.Process(child).status() != psutil.STATUS_ZOMBIE
    assert scan(app)[WORKER] == [], "a dead worker's leftover child would be called a worker and its exit unknown"


def test_a_stale_pid_and_create_time_is_not_signalled():
    victim = subprocess.Popen(["sleep", "60"])
    try:
        proc = psutil.Process(victim.pid)
        stale = ProcessRef(victim.pid, proc.create_time() - 100.0, tuple(proc.cmdline()), WORKER)
        assert oscontrol.send_signal(stale, signal.SIGTERM) is False
        other_cmd = ProcessRef(victim.pid, proc.create_time(), ("celery", "-A", "celery_app", "worker"), WORKER)
        assert oscontrol.send_signal(other_cmd, signal.SIGTERM) is False
        time.sleep(0.2)
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait(timeout=10)


def test_worker_busy_with_a_task_ignoring_term_is_killed_after_the_grace(app, client):
    client.post("/scheduler/start-celery/")
    celery = app.extensions["celery"]
    result = celery.send_task("tests.sleep_ignoring_term", args=[120])
    with app.app_context():
        wait_for(lambda: db.session.query(Run).filter_by(celery_task_id=result.id, status=RUNNING).first()
                 or db.session.rollback(), 30, "the task to run")
    pids = client.get("/scheduler/celery-status/").get_json()["worker"]
    tree = [pids["pids"][0]] + pids["pool_pids"][str(pids["pids"][0])]
    started = time.monotonic()
    body = client.post("/scheduler/stop-celery/").get_json()
    assert body["workers_killed"] == 1
    assert time.monotonic() - started >= app.config["STOP_GRACE_S"], "killed before the grace period ended"
    assert oscontrol.exit_status(pids["pids"][0]) == -signal.SIGKILL  # TERM was not enough: KILL ended it
    assert not [p for p in tree if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    with app.app_context():
        row = db.session.query(Run).filter_by(celery_task_id=result.id).one()
        assert row.status == "failed" and row.finished_at is not None
        assert "stopped from the panel" in row.error


def test_start_with_the_broker_down_is_503_and_starts_nothing(make_app):
    from tests.helpers import free_port
    app = make_app(CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")
    resp = api_client(app).post("/scheduler/start-celery/")
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["status"] == "error" and "broker unreachable" in body["message"]
    assert scan(app) == {WORKER: [], BEAT: []}


def test_a_worker_that_cannot_start_is_a_failure_with_its_log(make_app):
    app = make_app(CELERY_IMPORTS="no_such_module_for_the_panel")
    resp = api_client(app).post("/scheduler/start-celery/")
    body = resp.get_json()
    assert resp.status_code == 500
    assert body["status"] == "error"
    assert "no_such_module_for_the_panel" in body["log_tail"]["worker"]
    assert scan(app)[WORKER] == []


def test_api_errors_are_json_with_fitting_codes(client):
    missing = client.get("/scheduler/no-such-thing/")
    assert missing.status_code == 404 and missing.get_json()["status"] == "error"
    wrong = client.get("/scheduler/stop-celery/")
    assert wrong.status_code == 405 and wrong.get_json()["status"] == "error"
    legacy = client.get("/restart_celery_beat")
    assert legacy.status_code == 405 and legacy.get_json()["success"] is False


def test_a_restart_with_the_broker_down_leaves_beat_running(app, client):
    """Guards come first: a restart that cannot start Beat again must not stop it."""
    from tests.helpers import free_port
    client.post("/scheduler/start-celery/")
    before = client.get("/celery_status").get_json()["pids"]
    real_broker = app.config["CELERY_BROKER_URL"]
    app.config["CELERY_BROKER_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # what the supervisor checks
    try:
        resp = client.post("/restart_celery_beat")
    finally:
        app.config["CELERY_BROKER_URL"] = real_broker
    assert resp.status_code == 503 and resp.get_json()["success"] is False
    assert client.get("/celery_status").get_json()["pids"] == before


def test_a_restart_the_os_refuses_to_signal_is_500_and_leaves_beat_running_and_said_running(app, client, monkeypatch):
    """/restart_celery_beat: an OS permission error is a 500 with a message. As root the kernel never refuses, so the
    refusal is injected where the kernel would give it (os.kill), with a real Beat that must be left as it was."""
    assert app.extensions["supervisor"].start((BEAT,))[BEAT].ok
    [pid] = [r.pid for r in scan(app)[BEAT]]

    def refused(target, sig):
        raise PermissionError(1, "Operation not permitted", str(target))
    monkeypatch.setattr(oscontrol.os, "kill", refused)
    resp = client.post("/restart_celery_beat")
    body = resp.get_json()
    assert resp.status_code == 500 and body["success"] is False and "permission denied" in body["message"], body
    monkeypatch.undo()
    assert [r.pid for r in scan(app)[BEAT]] == [pid] and psutil.Process(pid).is_running()
    status = client.get("/scheduler/celery-status/").get_json()["beat"]
    assert status["active"] and status["state"] == "RUNNING"  # not left STOPPING
