"""Your own Celery project attached by settings: its worker and Beat run, found and stopped, never imported.

The project is tests/sample_project (`celery -A proj`), run with the suite's celery in its own folder.
"""
import json
import shutil
import subprocess

import psutil

from panel.config import ROOT
from panel.host.processes import BEAT, WORKER
from panel.target import SETTINGS as TARGET_SETTINGS
from tests.helpers import CELERY, PROJECT, api_client, end_process, wait_for


def table(app):
    return app.extensions["supervisor"].host.scan()


def _decoy(app, folder, app_name, node, logs):
    """A Celery worker that is not this panel's: same instance tag and broker, another app or another folder.

    Without the panel's CELERY_APP and CELERY_WORKDIR, which Celery itself reads as -A and --workdir.
    """
    env = {k: v for k, v in app.extensions["supervisor"].child_env().items() if k not in TARGET_SETTINGS}
    log_path = logs / f"{node.split('@')[0]}.log"
    argv = [CELERY, "-A", app_name, "worker", "-n", node, "--pool", "solo", "-l", "info", "-Q", "decoy-queue",
            "--without-mingle", "--without-gossip"]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, cwd=str(folder), env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    return proc, log_path


def test_the_projects_worker_and_beat_start_restart_and_stop_through_the_panel(attached):
    client = api_client(attached, "operator")
    body = client.post("/scheduler/start-celery/").get_json()
    assert body["status"] == "success", body
    found = table(attached)
    assert len(found[WORKER]) == 1 and len(found[BEAT]) == 1
    for ref in found[WORKER] + found[BEAT]:
        proc = psutil.Process(ref.pid)
        assert proc.cwd() == str(PROJECT) and "proj" in proc.cmdline(), proc.cmdline()
    assert "--task-events" in found[WORKER][0].cmdline, "task events must be on for the run log"
    assert found[WORKER][0].cmdline[-2:] == ("--concurrency", "3"), "CELERY_WORKER_ARGS come last, so they win"
    assert len(found[WORKER][0].children) == 3
    status = client.get("/celery_status").get_json()  # /celery_status answers for the attached app as for its own
    assert status["running"] is True and status["pids"] == [found[BEAT][0].pid], status
    toolbar = client.get("/scheduler/celery-status/").get_json()
    assert toolbar["worker"]["pids"] == [found[WORKER][0].pid], toolbar

    # The project's own Beat sends its own schedule, and its worker runs it.
    worker_log = attached.extensions["supervisor"].log_path(WORKER)
    wait_for(lambda: "proj.tick" in worker_log.read_text() and "succeeded" in worker_log.read_text(), 30,
             "the project's Beat to send proj.tick and its worker to run it")

    old_beat = found[BEAT][0].pid
    assert client.post("/restart_celery_beat").get_json()["success"] is True
    [new_beat] = table(attached)[BEAT]
    assert new_beat.pid != old_beat and not psutil.pid_exists(old_beat)

    body = client.post("/scheduler/stop-celery/").get_json()
    assert body["status"] == "success" and body["workers_killed"] == 1, body
    assert table(attached) == {WORKER: [], BEAT: []}


def test_another_projects_celery_and_the_embedded_apps_are_never_taken_for_the_projects(attached, tmp_path):
    other = tmp_path / "other_project"
    shutil.copytree(PROJECT, other)  # the same app name in another folder: another project
    started = [_decoy(attached, other, "proj", "decoy1@elsewhere", tmp_path),
               _decoy(attached, ROOT, "celery_app", "decoy2@here", tmp_path)]
    decoys = [proc for proc, _ in started]
    try:
        for proc, log_path in started:
            wait_for(lambda: proc.poll() is not None or " ready." in log_path.read_text(), 40, f"decoy {log_path.stem}")
            assert proc.poll() is None, log_path.read_text()[-2000:]
        assert table(attached) == {WORKER: [], BEAT: []}, "a decoy was taken for the project's worker"
        client = api_client(attached, "operator")
        assert client.post("/scheduler/start-celery/").get_json()["status"] == "success"
        assert not {r.pid for r in table(attached)[WORKER]} & {d.pid for d in decoys}
        assert client.post("/scheduler/stop-celery/").get_json()["workers_killed"] == 1
        assert all(d.poll() is None for d in decoys), "a stop of the project's Celery ended a decoy"
    finally:
        for decoy in decoys:
            end_process(decoy)


def test_a_project_that_cannot_start_is_answered_with_its_reason_and_log_tail(make_app):
    app = make_app(CELERY_APP="proj.missing", CELERY_WORKDIR=str(PROJECT), CELERY_BIN=CELERY, START_TIMEOUT_S=20.0)
    resp = api_client(app, "operator").post("/scheduler/start-celery/")
    body = resp.get_json()
    assert resp.status_code == 500 and body["status"] == "error", body
    assert "worker exited during start-up" in body["message"], body
    assert "proj.missing" in body["log_tail"]["worker"], "the log tail must show why: the app it could not load"


def test_celery_check_says_what_it_found_of_the_project_and_the_health_card_names_it(attached):
    client = api_client(attached, "operator")
    assert client.post("/scheduler/start-celery/").get_json()["status"] == "success"
    env = dict(attached.extensions["supervisor"].child_env(), FLASK_APP="app")
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "flask"), "--app", "app", "celery-check", "--json"],
                         cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    facts = json.loads(out.stdout)
    project = facts["project"]
    assert (project["app"], project["workdir"], project["embedded"], project["loads"]) == \
        ("proj", str(PROJECT), False, True)
    assert project["celery_version"].startswith("5."), project
    assert facts["broker"]["ok"] and facts["backend"]["ok"]
    node = attached.extensions["supervisor"].nodename
    assert {"proj.add", "proj.fail", "proj.slow", "proj.tick"} <= set(facts["workers"][node]), facts["workers"]
    health = client.get("/api/health").get_json()
    assert health["app"] == {"name": "proj", "workdir": str(PROJECT), "embedded": False, "schedules_sent_by": "panel",
                             "schedules_paused": False}
    dashboard = client.get("/").get_data(as_text=True)
    assert 'id="which-beat"' in dashboard and "Your project's Beat (proj)" in dashboard, "which Beat sends what"


def test_celery_check_fails_with_the_reason_when_the_app_does_not_load(make_app):
    app = make_app(CELERY_APP="proj.missing", CELERY_WORKDIR=str(PROJECT), CELERY_BIN=CELERY)
    env = dict(app.extensions["supervisor"].child_env(), FLASK_APP="app")
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "flask"), "--app", "app", "celery-check"],
                         cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "app loads   ✗" in out.stdout and "proj.missing" in out.stdout, out.stdout
