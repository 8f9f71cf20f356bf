"""Several hosts in one pane: real supervisord processes (each with its own password on a loopback port) running
the sample project's worker, one also its Beat, controlled through GET /api/hosts and POST /api/hosts/..."""
import logging
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from models import AlertEvent, AuditEvent, FollowedProgram, ProcessEvent, db
from panel import background
from panel.config import read_settings
from panel.errors import NoSuchProgram, SettingsError
from panel.fleet.hosts import exposed
from panel.host.supervisord import redact
from tests.helpers import api_client, wait_for
from tests.supervisord_harness import PASSWORDS, PROGRAMS, SupervisordHost, beat_command, worker_command

READY_WAIT_S = 90  # a worker's start on two shared cores, with a CI run beside it
HOLD_S = 10  # a stop through the panel must still hold this long after


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, redis_server):
    """Two hosts: alpha runs a worker and Beat, beta only a worker; both RUNNING before the tests start."""
    hosts = {}
    try:
        for name in ("alpha", "beta"):
            folder = tmp_path_factory.mktemp(f"supervisord-{name}")
            programs = {PROGRAMS["worker"]: worker_command(f"{name}@hosts-test")}
            if name == "alpha":
                programs[PROGRAMS["beat"]] = beat_command(folder)
            hosts[name] = SupervisordHost(folder, name, redis_server.url, programs)
        for host in hosts.values():
            for program in ([PROGRAMS["worker"], PROGRAMS["beat"]] if host.name == "alpha" else [PROGRAMS["worker"]]):
                wait_for(lambda h=host, p=program: h.running(p), READY_WAIT_S, f"{program} RUNNING on {host.name}")
        yield hosts
    finally:
        for host in hosts.values():
            host.stop()


def pane_app(make_app, hosts, **extra):
    return make_app(SUPERVISORS={h.name: h.url for h in hosts}, SUPERVISOR_PROGRAMS=dict(PROGRAMS),
                    SUPERVISOR_TIMEOUT_S=2.0, **extra)


def host_view(client, name):
    answer = client.get("/api/hosts")
    assert answer.status_code == 200, answer.get_json()
    return next(h for h in answer.get_json()["hosts"] if h["name"] == name)


def program_view(client, host, kind):
    return next((p for p in host_view(client, host)["programs"] if p["name"] == kind), None)


def copies_of(node):
    """Main worker processes of this node name in the process table (a solo worker has no pool children)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "worker" in cmdline and node in cmdline:
            found.append(proc.pid)
    return found


def test_the_pane_shows_each_hosts_programs_with_supervisors_states_and_pids(make_app, fleet):
    client = api_client(pane_app(make_app, fleet.values()), "viewer")
    hosts = client.get("/api/hosts").get_json()["hosts"]
    assert [h["name"] for h in hosts] == ["alpha", "beta"]
    alpha, beta = hosts
    assert alpha["reachable"] and beta["reachable"] and alpha["error"] is None
    assert [(p["name"], p["program"], p["state"]) for p in alpha["programs"]] == [
        ("worker", "celery-worker", "RUNNING"), ("beat", "celery-beat", "RUNNING")]
    assert [(p["name"], p["state"]) for p in beta["programs"]] == [("worker", "RUNNING")]  # no Beat on beta
    assert alpha["programs"][0]["pid"] == fleet["alpha"].running("celery-worker")
    assert beta["programs"][0]["pid"] in copies_of("beta@hosts-test")
    assert all(p["uptime_s"] >= 0 for h in hosts for p in h["programs"])


def test_the_seam_tails_a_programs_log_and_names_a_program_supervisor_does_not_have(fleet):
    alpha = fleet["alpha"].client
    assert "alpha@hosts-test" in alpha.tail("celery-worker")  # the worker's banner, through tailProcessStdoutLog
    with pytest.raises(NoSuchProgram, match="supervisord on alpha has no such program: flower"):
        alpha.program("flower")


def test_a_stop_through_the_panel_holds_and_a_start_brings_one_copy_back(make_app, fleet):
    app = pane_app(make_app, fleet.values())
    operator, viewer = api_client(app, "operator"), api_client(app, "viewer")
    stopped = operator.post("/api/hosts/beta/worker/stop")
    assert stopped.status_code == 200, stopped.get_json()
    assert stopped.get_json()["state"] == "STOPPED" and stopped.get_json()["pid"] is None
    assert copies_of("beta@hosts-test") == []
    held_until = time.monotonic() + HOLD_S
    while time.monotonic() < held_until:  # Supervisor does not bring it back, and nothing else starts a copy
        assert program_view(viewer, "beta", "worker")["state"] == "STOPPED"
        assert copies_of("beta@hosts-test") == []
        time.sleep(0.5)
    again = operator.post("/api/hosts/beta/worker/stop").get_json()
    assert again["message"] == "worker (celery-worker) on beta was already stopped"

    started = operator.post("/api/hosts/beta/worker/start")
    assert started.status_code == 200, started.get_json()
    body = started.get_json()
    assert body["state"] == "RUNNING" and copies_of("beta@hosts-test") == [body["pid"]]
    assert operator.post("/api/hosts/beta/worker/start").get_json()["pid"] == body["pid"]  # no second copy
    assert copies_of("beta@hosts-test") == [body["pid"]]


def test_a_restart_through_the_panel_gives_a_new_pid(make_app, fleet):
    operator = api_client(pane_app(make_app, fleet.values()), "operator")
    old = fleet["alpha"].running("celery-beat")
    restarted = operator.post("/api/hosts/alpha/beat/restart").get_json()
    assert restarted["state"] == "RUNNING" and restarted["pid"] not in (None, old)


def test_a_worker_killed_is_restarted_by_supervisor_alone_and_the_pane_shows_the_new_pid_and_a_history_row(
        make_app, fleet):
    app = pane_app(make_app, fleet.values(), WATCHDOG_INTERVAL_S=0.3)
    viewer = api_client(app, "viewer")
    old = program_view(viewer, "alpha", "worker")["pid"]
    handle = background.start(app)  # the follower looks at every host each 0.3 s
    try:
        wait_for(lambda: followed(app, "alpha", "worker") == [old], 30, "the follower to know alpha's worker")
        os.kill(old, signal.SIGKILL)
        new = wait_for(lambda: (p := program_view(viewer, "alpha", "worker"))["state"] == "RUNNING"
                       and p["pid"] not in (None, old) and p["pid"], READY_WAIT_S, "Supervisor to restart the worker")
        [crash] = wait_for(lambda: crashes(app), 30, "the crash in the restart history")
    finally:
        handle.stop()
    assert copies_of("alpha@hosts-test") == [new]
    assert (crash.host, crash.program, crash.exit_status, crash.pids) == ("alpha", "worker", -9, [old])
    assert f"killed by SIGKILL; Supervisor started it again (PID {new})" in crash.message
    shown = viewer.get("/api/process-events?limit=50").get_json()["events"]
    assert any(e["host"] == "alpha" and e["action"] == "crash" for e in shown)


def test_a_stop_and_start_through_the_pane_are_history_rows_with_the_host_and_never_a_crash(make_app, fleet):
    app = pane_app(make_app, fleet.values(), WATCHDOG_INTERVAL_S=0.3)
    operator = api_client(app, "operator")
    handle = background.start(app)
    try:
        old = fleet["alpha"].running("celery-beat")
        wait_for(lambda: followed(app, "alpha", "beat") == [old], 30, "the follower to know alpha's Beat")
        assert operator.post("/api/hosts/alpha/beat/restart").status_code == 200
        new = fleet["alpha"].running("celery-beat")
        wait_for(lambda: followed(app, "alpha", "beat") == [new], 30, "the follower to see the new PID")
    finally:
        handle.stop()
    with app.app_context():
        rows = db.session.query(ProcessEvent).filter_by(host="alpha", program="beat").all()
    said = [(r.action, r.outcome, r.actor) for r in rows]
    assert said == [("restart", "ok", "test-operator")], [r.message for r in rows]
    assert rows[0].pids == [old, new] and not crashes(app)


def followed(app, host, kind):
    with app.app_context():
        row = db.session.get(FollowedProgram, (host, kind))
        db.session.remove()
        return row.pids if row else None


def crashes(app):
    with app.app_context():
        rows = db.session.query(ProcessEvent).filter_by(action="crash").all()
        db.session.remove()
        return rows


def test_a_silent_host_answers_unreachable_within_the_timeout_and_the_other_host_stays_fine(make_app, fleet):
    client = api_client(pane_app(make_app, fleet.values()), "viewer")
    os.kill(fleet["beta"].proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        hosts = {h["name"]: h for h in client.get("/api/hosts").get_json()["hosts"]}
        print(f"GET /api/hosts with beta silent took {time.monotonic() - started:.2f} s (timeout 2 s)")
        again = {h["name"]: h for h in client.get("/api/hosts").get_json()["hosts"]}  # not waited for again
        acted = api_client(client.application, "operator").post("/api/hosts/beta/worker/stop")
    finally:
        os.kill(fleet["beta"].proc.pid, signal.SIGCONT)
    assert hosts["beta"] == {"name": "beta", "reachable": False, "programs": [], "nodes": [],
                             "error": "supervisord on beta did not answer within 2 s"}
    assert hosts["alpha"]["reachable"] and hosts["alpha"]["programs"][0]["state"] == "RUNNING"
    assert again["beta"] == hosts["beta"] and again["alpha"]["reachable"]
    assert acted.status_code == 503 and "did not answer" in acted.get_json()["message"]
    wait_for(lambda: host_view(client, "beta")["reachable"], 10, "beta seen again at the next poll")


def test_a_killed_supervisord_is_unreachable_with_its_reason(make_app, fleet, tmp_path):
    gone = SupervisordHost(tmp_path / "gamma", "gamma", "redis://127.0.0.1:1/0", {})
    wait_for(lambda: _answers(gone), 30, "gamma's supervisord to answer")
    gone.proc.kill()
    gone.proc.wait(timeout=10)
    client = api_client(pane_app(make_app, [fleet["alpha"], gone]), "viewer")
    hosts = {h["name"]: h for h in client.get("/api/hosts").get_json()["hosts"]}
    assert hosts["gamma"]["reachable"] is False
    assert hosts["gamma"]["error"] == "supervisord on gamma is unreachable: Connection refused"
    assert hosts["alpha"]["reachable"] is True


def test_a_supervisord_is_reached_over_its_unix_socket(make_app):
    folder = Path(tempfile.mkdtemp(prefix="sv-", dir="/tmp"))  # a socket's path is short (108 bytes at most)
    local = SupervisordHost(folder, "local", "redis://127.0.0.1:1/0", {"celery-worker": "sleep 600"},
                            socket=folder / "supervisor.sock")
    try:
        wait_for(lambda: local.running("celery-worker"), 30, "the program RUNNING on the local supervisord")
        app = make_app(SUPERVISORS={"local": f"unix://{folder}/supervisor.sock"}, SUPERVISOR_PROGRAMS=dict(PROGRAMS))
        (host,) = api_client(app, "viewer").get("/api/hosts").get_json()["hosts"]
        assert host["reachable"] and host["programs"][0]["pid"] == local.running("celery-worker")
        stopped = api_client(app, "operator").post("/api/hosts/local/worker/stop").get_json()
        assert stopped["state"] == "STOPPED"
    finally:
        local.stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_a_bad_supervisors_setting_stops_the_start_naming_the_key_and_not_the_password(monkeypatch, tmp_path):
    monkeypatch.setenv("SUPERVISORS", "alpha=http://admin:Hush-9@10.0.0.5:9001,beta=ftp://admin:Hush-9@h")
    with pytest.raises(SettingsError) as refused:
        read_settings(tmp_path / "none.env")
    assert str(refused.value) == ("SUPERVISORS: entry 2 is not name=http://user:password@host:port or "
                                  "name=unix:///path")
    monkeypatch.setenv("SUPERVISORS", "alpha=http://admin:Hush-9@10.0.0.5:9001, beta=unix:///run/s.sock")
    monkeypatch.setenv("SUPERVISOR_PROGRAMS", "worker=celery:worker")
    settings = read_settings(tmp_path / "none.env")
    assert settings.SUPERVISORS == {"alpha": "http://admin:Hush-9@10.0.0.5:9001", "beta": "unix:///run/s.sock"}
    assert settings.SUPERVISOR_PROGRAMS == {"worker": "celery:worker"}
    monkeypatch.setenv("SUPERVISOR_PROGRAMS", "flower=celery-flower")
    with pytest.raises(SettingsError, match="SUPERVISOR_PROGRAMS: entry 1 is not worker=<program> or beat="):
        read_settings(tmp_path / "none.env")


def _answers(host):
    try:
        return host.client.programs() == {}
    except Exception:
        return False


def test_wrong_credentials_are_a_clear_per_host_error_and_no_password_is_written_anywhere(make_app, fleet, caplog):
    alpha = fleet["alpha"]
    wrong = f"http://{alpha.user}:not-the-Pa55word@127.0.0.1:{alpha.port}"
    app = make_app(SUPERVISORS={"alpha": alpha.url, "wrong": wrong, "beta": fleet["beta"].url},
                   SUPERVISOR_PROGRAMS=dict(PROGRAMS))
    caplog.set_level(logging.DEBUG)
    viewer, operator = api_client(app, "viewer"), api_client(app, "operator")
    seen = viewer.get("/api/hosts").get_data(as_text=True)
    hosts = {h["name"]: h for h in viewer.get("/api/hosts").get_json()["hosts"]}
    assert hosts["wrong"]["reachable"] is False
    assert hosts["wrong"]["error"] == "supervisord on wrong refused the credentials"
    assert hosts["alpha"]["reachable"] and hosts["beta"]["reachable"]
    refused = operator.post("/api/hosts/wrong/worker/restart")
    assert refused.status_code == 502 and refused.get_json()["message"] == hosts["wrong"]["error"]
    unknown = [operator.post(path) for path in ("/api/hosts/nowhere/worker/start", "/api/hosts/beta/beat/start",
                                                "/api/hosts/beta/flower/start", "/api/hosts/beta/worker/kill")]
    assert [r.status_code for r in unknown] == [404, 404, 404, 404]
    assert "no host 'nowhere'" in unknown[0].get_json()["message"]
    assert "has no such program: celery-beat" in unknown[1].get_json()["message"]
    with app.app_context():
        audit = [f"{e.action} {e.target} {e.outcome} {e.detail}" for e in db.session.query(AuditEvent).all()]
    assert any("/api/hosts/wrong/worker/restart" in row and "refused the credentials" in row for row in audit)
    written = "\n".join([seen, refused.get_data(as_text=True), *(r.get_data(as_text=True) for r in unknown),
                         *audit, *(r.getMessage() for r in caplog.records),
                         (Path(app.instance_path) / "logs" / "panel.log").read_text()])
    for secret in (*PASSWORDS.values(), "not-the-Pa55word"):
        assert secret not in written


def test_redact_masks_the_password_of_any_url_in_a_message():
    assert redact("http://u:s3cr%40t@h:1/RPC2 and u:pw@127.0.0.1:9") == "http://u:***@h:1/RPC2 and u:***@127.0.0.1:9"
    assert redact("unix:///run/supervisor.sock and http://h:9001") == "unix:///run/supervisor.sock and http://h:9001"


def test_without_supervisors_the_pane_is_empty_and_every_host_unknown(client):
    assert client.get("/api/hosts").get_json() == {"hosts": []}
    assert client.post("/api/hosts/any/worker/start").status_code == 404


def test_plain_http_to_a_host_off_loopback_is_warned_about_and_loopback_or_a_socket_is_not():
    warned = exposed({"near": "http://u:p@127.0.0.1:9001", "six": "http://u:p@[::1]:9001", "named": "http://localhost:1",
                      "sock": "unix:///run/supervisor.sock", "far": "http://u:Hush-9@10.0.0.5:9001"})
    assert warned == ["far: supervisord over plain http:// on 10.0.0.5: its password crosses the network in clear; "
                      "keep it on a private network, use unix:// or an SSH tunnel to loopback"]


def test_celery_check_warns_about_a_supervisord_reached_over_plain_http_off_loopback(make_app):
    app = make_app(SUPERVISORS={"far": "http://u:Hush-9@10.0.0.5:9001", "near": "http://u:p@127.0.0.1:9001"})
    said = app.test_cli_runner().invoke(args=["celery-check"]).output
    assert "⚠ SUPERVISORS: far: supervisord over plain http:// on 10.0.0.5" in said, said
    assert "near:" not in said and "Hush-9" not in said


def test_celery_check_warns_about_this_hosts_supervisord_reached_over_plain_http_off_loopback(make_app):
    app = make_app(PROCESS_MANAGER="supervisor", SUPERVISOR_URL="http://u:Hush-9@10.0.0.7:9001")
    said = app.test_cli_runner().invoke(args=["celery-check"]).output
    assert "⚠ SUPERVISOR_URL: supervisord over plain http:// on 10.0.0.7: its password crosses" in said, said
    assert "Hush-9" not in said
    near = make_app(PROCESS_MANAGER="supervisor", SUPERVISOR_URL="unix:///run/supervisor.sock")
    assert "SUPERVISOR_URL" not in near.test_cli_runner().invoke(args=["celery-check"]).output


def test_a_program_supervisor_gives_up_on_is_a_crash_a_backoff_and_a_fatal_row_with_an_alert(make_app, tmp_path):
    """A worker that dies and then cannot start again: Supervisor retries (BACKOFF), then gives up (FATAL)."""
    script = tmp_path / "run.sh"
    script.write_text("exec sleep 600\n")
    broken = SupervisordHost(tmp_path / "delta", "delta", "redis://127.0.0.1:1/0",
                             {PROGRAMS["worker"]: f"bash {script}"}, extra="startretries=1\n")
    try:
        old = wait_for(lambda: broken.running(PROGRAMS["worker"]), 30, "delta's program RUNNING")
        app = pane_app(make_app, [broken], WATCHDOG_INTERVAL_S=0.3)
        handle = background.start(app)
        try:
            wait_for(lambda: followed(app, "delta", "worker") == [old], 30, "the follower to know delta's worker")
            script.write_text("exit 3\n")  # from now on it exits at once
            os.kill(old, signal.SIGKILL)
            wait_for(lambda: "fatal" in [e.action for e in events(app, "delta")], 60,
                     lambda: f"the FATAL row; seen {[e.action for e in events(app, 'delta')]}")
        finally:
            handle.stop()
        crash, *backoffs, fatal = events(app, "delta")
        assert crash.action == "crash" and crash.exit_status == -9, crash.message  # the SIGKILL, not a later exit
        assert "killed by SIGKILL" in crash.message and crash.pids == [old]
        assert backoffs and {e.action for e in backoffs} == {"backoff"}, "a start that fails is no crash"
        assert "it exited while starting (exit status 3)" in backoffs[0].message
        assert (fatal.outcome, fatal.actor) == ("error", "supervisord") and "exit status 3" in fatal.message
        assert broken.client.program(PROGRAMS["worker"])["state"] == "FATAL"
        with app.app_context():
            alerts = [a.subject for a in db.session.query(AlertEvent).all()]
        assert "Celery worker on delta is FATAL" in alerts, alerts
    finally:
        broken.stop()


def events(app, host):
    with app.app_context():
        rows = db.session.query(ProcessEvent).filter_by(host=host).order_by(ProcessEvent.id).all()
        db.session.remove()
        return rows
