"""Your own project's runs in the run log, recorded from Celery's task events alone.

Tasks are sent by the project itself (`celery -A proj call` in its folder, and its own Beat), so nothing
of the panel runs where they are sent or executed.
"""
import json
import os
import signal
import subprocess
import threading

import psutil
import pytest

from models import AlertEvent, ProcessEvent, db
from panel import background
from panel.broker import events, remote, results
from panel.runlog import from_events, outcomes
from tests.helpers import CELERY, PROJECT, WATCHDOG_FAST, api_client, dog, ended, project_call, run_row, tool, wait_for

WAIT_S = 30


@pytest.fixture
def recording(attached):
    """The attached panel with its event recorder running, and Celery started through the panel."""
    stop = from_events.start(attached)
    assert api_client(attached, "operator").post("/scheduler/start-celery/").get_json()["status"] == "success"
    yield attached
    stop.set()
    _recorder_gone()


def _recorder_gone():
    wait_for(lambda: not any(t.name == "run-events" and t.is_alive() for t in threading.enumerate()), 10,
             "the event recorder to stop")


def test_the_projects_runs_are_recorded_from_events_with_results_errors_and_retries(recording):
    added, failed, flaky = (project_call(recording, "proj.add", "[1, 2]"),
                            project_call(recording, "proj.fail", '["boom"]'), project_call(recording, "proj.flaky"))
    row = ended(recording, added)
    assert (row.status, row.state, row.result, row.task_name) == ("completed", "SUCCESS", "3", "proj.add")
    assert row.worker == recording.extensions["supervisor"].nodename and row.started_at and row.finished_at
    assert row.args == [1, 2], "args read back from the repr the events carry"
    row = ended(recording, failed)
    assert (row.status, row.state) == ("failed", "FAILURE") and "boom" in row.error
    assert "ValueError: boom" in row.traceback and "proj/celery.py" in row.traceback
    row = wait_for(lambda: (r := ended(recording, flaky)) and r.state == "FAILURE" and r, WAIT_S, "the last attempt")
    assert row.retries == 2 and "upstream is down" in row.error
    # The project's own Beat sends proj.tick: those runs are recorded too, with nobody of the panel sending.
    client = api_client(recording, "viewer")
    wait_for(lambda: any(r["task"] == "proj.tick" and r["status"] == "completed"
                         for r in client.get("/api/runs?task=proj.tick").get_json()["runs"]), WAIT_S,
             "a run of the project's Beat in /api/runs")


def test_a_running_project_task_cancelled_from_the_panel_really_stops(recording):
    slow = project_call(recording, "proj.slow", "[300]")
    row = wait_for(lambda: (r := run_row(recording, slow)) and r.status == "running" and r, WAIT_S, "the run to start")
    celery = recording.extensions["celery"]
    pid = wait_for(lambda: remote.executing_pid(celery, row.worker, slow), 10, "its pool process")
    pool = psutil.Process(pid)
    body = api_client(recording, "operator").post(f"/scheduler/cancel-run/{slow}/").get_json()
    assert body["confirmed_stopped"] is True and body["stopped"] == [slow], body
    assert not pool.is_running() or pool.status() == psutil.STATUS_ZOMBIE, "the pool process still runs"
    # The worker's own events of the end (revoked, terminated) come after: the cancel stays the ending.
    after = project_call(recording, "proj.add", "[2, 2]")  # a later run: its end proves the earlier events are in
    ended(recording, after)
    assert run_row(recording, slow).error == outcomes.CANCELLED.reason


def test_the_cli_tools_report_locate_and_revoke_the_projects_runs(recording):
    added = project_call(recording, "proj.add", "[4, 4]")
    ended(recording, added)
    status = json.loads(tool(recording, "task_manager.py", "--json", "status", added).stdout)
    assert status["backend"]["state"] == "SUCCESS", status
    assert (status["record"]["task"], status["record"]["result"]) == ("proj.add", "8"), status
    slow = project_call(recording, "proj.slow", "[300]")
    wait_for(lambda: (r := run_row(recording, slow)) and r.status == "running", WAIT_S, "the run to start")
    where = json.loads(tool(recording, "task_manager.py", "--json", "info", slow).stdout)["where"]
    assert where["active"] == [recording.extensions["supervisor"].nodename], where
    revoked = tool(recording, "task_manager.py", "--json", "revoke", "--terminate", slow)
    assert revoked.returncode == 0, revoked.stdout
    row = ended(recording, slow)
    assert (row.status, row.state) == ("failed", "REVOKED"), (row.status, row.state, row.error)


def test_events_sent_while_the_panel_is_away_wait_in_its_queue_on_rabbitmq(make_app, rabbitmq_url, redis_server):
    """On AMQP the panel's event queue is durable and named: a panel restart loses nothing sent meanwhile."""
    app = make_app(CELERY_APP="proj", CELERY_WORKDIR=str(PROJECT), CELERY_BIN=CELERY,
                   CELERY_BROKER_URL=rabbitmq_url, CELERY_RESULT_BACKEND=redis_server.url)
    stop = from_events.start(app)
    assert api_client(app, "operator").post("/scheduler/start-celery/").get_json()["status"] == "success"
    ended(app, project_call(app, "proj.add", "[0, 0]"))  # the panel's queue exists and is consumed
    queue = _queue(rabbitmq_url, events.durable_queue_name(app.config["INSTANCE_PATH"]))
    assert queue["durable"] and not queue["auto_delete"], queue
    # Bounded, so a panel gone for good cannot fill the broker: length, age of a message, the queue unused.
    arguments = {name: value for name, _, value in queue["arguments"]}
    assert arguments == {"x-max-length": 100000, "x-message-ttl": 86400000, "x-expires": 604800000}, queue
    stop.set()
    _recorder_gone()
    sent = [project_call(app, "proj.add", f"[{n}, 1]") for n in range(3)]
    wait_for(lambda: _worker_ran(app, sent), WAIT_S, "the worker to run them while the panel is away")
    assert all(run_row(app, task_id) is None for task_id in sent), "recorded while the recorder was stopped?"
    stop = from_events.start(app)
    try:
        assert [ended(app, task_id).result for task_id in sent] == ["1", "2", "3"]
        assert all(ended(app, task_id).args == [n, 1] for n, task_id in enumerate(sent))
    finally:
        stop.set()
        _recorder_gone()


def test_runs_that_end_while_the_panel_is_away_on_redis_are_read_back_from_the_result_backend(attached):  # noqa: F811
    """On Redis the workers' events are PUB/SUB: what ended meanwhile comes back from the result backend."""
    celery = attached.extensions["celery"]
    stop = from_events.start(attached)
    assert api_client(attached, "operator").post("/scheduler/start-celery/").get_json()["status"] == "success"
    ended(attached, project_call(attached, "proj.add", "[0, 0]"))  # the recorder has written: its mark is set
    stop.set()
    _recorder_gone()
    away = [project_call(attached, "proj.add", f"[{n}, 1]") for n in range(2)] + [
        project_call(attached, "proj.fail", '["while away"]')]
    wait_for(lambda: all(results.stored(celery, task_id) for task_id in away), WAIT_S, "the worker to end them")
    assert all(run_row(attached, task_id) is None for task_id in away), "recorded while the recorder was stopped?"
    stop = from_events.start(attached)
    try:
        assert [ended(attached, task_id).result for task_id in away[:2]] == ["1", "2"]
        failed = ended(attached, away[2])
        assert (failed.status, failed.state) == ("failed", "FAILURE") and "while away" in failed.error
        assert "ValueError: while away" in failed.traceback
    finally:
        stop.set()
        _recorder_gone()


def _queue(url, name):
    """The queue as RabbitMQ itself lists it."""
    vhost = url.rsplit("/", 1)[1]
    out = subprocess.run(["rabbitmqctl", "list_queues", "-p", vhost, "--formatter", "json", "name", "durable",
                          "auto_delete", "arguments"], capture_output=True, text=True, timeout=60)
    found = [q for q in json.loads(out.stdout) if q["name"] == name]
    assert found, out.stdout
    return found[0]


def _worker_ran(app, task_ids):
    text = app.extensions["supervisor"].log_path("worker").read_text()
    return all(f"[{task_id}] succeeded" in text for task_id in task_ids)


def test_a_run_the_panel_never_saw_is_shown_from_the_result_backend(attached):  # noqa: F811
    client = api_client(attached, "viewer")
    assert api_client(attached, "operator").post("/scheduler/start-celery/").get_json()["status"] == "success"
    unseen = project_call(attached, "proj.add", "[5, 5]")  # no recorder running: no event is recorded
    wait_for(lambda: _worker_ran(attached, [unseen]), WAIT_S, "the worker to run it")
    assert run_row(attached, unseen) is None
    page = client.get(f"/runs/{unseen}")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "Not in the run log" in text and "SUCCESS" in text, text[:500]
    assert '<pre class="code" id="run-result">10</pre>' in text
    assert client.get("/runs/no-such-run").status_code == 404


def test_the_projects_worker_killed_mid_task_is_restarted_by_the_watchdog_and_its_run_fails(make_app):
    """The whole background (watchdog, monitor, run log from events) for an attached project."""
    app = make_app(CELERY_APP="proj", CELERY_WORKDIR=str(PROJECT), CELERY_BIN=CELERY, **WATCHDOG_FAST)
    handle = background.start(app)
    try:
        wait_for(handle.acting.is_set, 10, "the background duties to start")
        assert api_client(app, "operator").post("/api/watchdog/worker", json={"enabled": True}).status_code == 200
        host = app.extensions["supervisor"].host
        wait_for(lambda: dog(app, "worker")["state"] == "RUNNING", 40, "the watchdog to start the worker")
        [old] = [r.pid for r in host.scan()["worker"]]
        slow = project_call(app, "proj.slow", "[300]")
        wait_for(lambda: (r := run_row(app, slow)) and r.status == "running", WAIT_S, "the run to start")
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: (pids := [r.pid for r in host.scan()["worker"]]) and pids != [old], 60,
                 "the watchdog to start the project's worker again")
        run = wait_for(lambda: (r := run_row(app, slow)) and r.status == "failed" and r, 30, "the run to fail")
        # The exit status is named when this panel process reaped the worker; another reaper leaves it unknown.
        assert f"Worker {app.extensions['supervisor'].nodename} died (" in run.error, run.error
        with app.app_context():
            crashes = db.session.query(ProcessEvent).filter_by(program="worker", action="crash").all()
            assert [c.exit_status for c in crashes] == [-signal.SIGKILL]
            assert db.session.query(AlertEvent).filter_by(kind="process_stopped").count() == 1
    finally:
        handle.stop()
