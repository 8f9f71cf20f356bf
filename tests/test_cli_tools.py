"""scripts/task_manager.py and scripts/stop_retries.py against a real worker, broker and database."""
import json

import psutil
import pytest

from panel.host import processes
from tests.helpers import (
    api_client,
    executing_pid,
    free_port,
    process_gone,
    run_row as row,
    start_worker,
    tool,
    wait_for,
)


@pytest.mark.parametrize("args", [
    ["task_manager.py", "--help"], ["task_manager.py", "status", "--help"], ["task_manager.py", "info", "--help"],
    ["task_manager.py", "revoke", "--help"], ["task_manager.py", "cleanup", "--help"], ["stop_retries.py", "--help"],
])
def test_every_command_has_help(app, args):
    out = tool(app, *args)
    assert out.returncode == 0 and "usage:" in out.stdout


def test_usage_errors_exit_2(app):
    assert tool(app, "task_manager.py", "explode", "x").returncode == 2
    assert tool(app, "stop_retries.py").returncode == 2
    assert tool(app, "stop_retries.py", "--check", "a", "--all-retries").returncode == 2


def test_an_unknown_id_exits_1(app):
    out = tool(app, "task_manager.py", "--json", "status", "no-such-task")
    assert out.returncode == 1 and json.loads(out.stdout)["found"] is False
    assert tool(app, "stop_retries.py", "--check", "no-such-task").returncode == 1


def test_an_unreachable_broker_exits_3_with_words_not_a_traceback(app):
    env = dict(app.extensions["supervisor"].child_env(), CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")
    out = tool(app, "stop_retries.py", "--all-retries", env=env, timeout=60)  # bench/fault_answers.py: how fast
    assert out.returncode == 3 and "unreachable" in out.stderr and "Traceback" not in out.stderr


def test_settings_come_from_an_env_file_and_the_environment_wins(app, tmp_path, redis_server):
    env = app.extensions["supervisor"].child_env()
    env.pop("CELERY_BROKER_URL")
    env.pop("CELERY_RESULT_BACKEND")
    env_file = tmp_path / "backend.env"
    env_file.write_text(f"BROKER_URL={redis_server.url}\nCELERY_RESULT_BACKEND={redis_server.url}\n")
    assert tool(app, "task_manager.py", "--env-file", str(env_file), "status", "x", env=env).returncode == 1
    dead = dict(env, CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert tool(app, "task_manager.py", "--env-file", str(env_file), "status", "x", env=dead).returncode == 3
    assert tool(app, "task_manager.py", "--env-file", str(tmp_path / "missing.env"), "status", "x").returncode == 2


def test_a_retry_loop_is_listed_checked_and_stopped_for_good_even_after_a_restart(app):
    start_worker(app)
    # A countdown far longer than the steps below and a worker restart, even on a loaded machine: the retry
    # is still waiting when the worker goes down, comes back to the queue on warm shutdown, and reaches the
    # new worker, which discards it on receipt (the revoke is in its --statedb), long before it falls due.
    looping = app.extensions["celery"].send_task("tests.always_fails", kwargs={"countdown": 300})
    wait_for(lambda: (r := row(app, looping.id)) and r.retries >= 1, 20, "the first retry")

    listed = tool(app, "stop_retries.py", "--json", "--all-retries")
    assert listed.returncode == 0
    entry = next(t for t in json.loads(listed.stdout)["tasks"] if t["id"] == looping.id)
    assert entry["name"] == "tests.always_fails" and entry["retries"] >= 1 and entry["next_attempt"] and entry["worker"]

    check = tool(app, "stop_retries.py", "--check", looping.id)
    assert check.returncode == 0 and "RETRYING" in check.stdout and "retries so far" in check.stdout

    stopped = tool(app, "stop_retries.py", "--json", looping.id)
    report = json.loads(stopped.stdout)
    assert stopped.returncode == 0 and report["ok"], report
    assert row(app, looping.id).status == "failed"
    retries_then = row(app, looping.id).retries

    sup = app.extensions["supervisor"]
    log_path = sup.log_path(processes.WORKER)
    sup.stop((processes.WORKER,))
    restarted_at = log_path.stat().st_size
    start_worker(app)
    discarded = f"Discarding revoked task: tests.always_fails[{looping.id}]"
    wait_for(lambda: discarded in log_path.read_text()[restarted_at:], 30, "the new worker to discard the retry")
    after = row(app, looping.id)  # a late revoke write could not change it: an ended run stays ended
    assert after.retries == retries_then and after.status == "failed"
    assert after.error.startswith("Retry loop stopped manually by cli:")
    assert "not retrying" in tool(app, "stop_retries.py", "--check", looping.id).stdout


def test_info_finds_an_active_task_on_its_worker_and_revoke_terminate_stops_it(app):
    start_worker(app)
    busy = app.extensions["celery"].send_task("tests.sleep", args=[120])
    wait_for(lambda: (r := row(app, busy.id)) and r.status == "running", 20, "the task to run")
    info = tool(app, "task_manager.py", "--json", "info", busy.id)
    report = json.loads(info.stdout)
    assert info.returncode == 0 and report["where"]["active"] == [app.extensions["supervisor"].nodename]
    assert "ACTIVE on" in tool(app, "task_manager.py", "info", busy.id).stdout

    node = app.extensions["supervisor"].nodename
    pid = wait_for(lambda: executing_pid(app.extensions["celery"], node, busy.id), 10, "the run's pool pid")
    created = psutil.Process(pid).create_time()
    plain = tool(app, "task_manager.py", "revoke", busy.id)
    assert plain.returncode == 1 and "use --terminate" in plain.stdout
    assert not process_gone(pid, created), "a plain revoke must leave the executing process alone"
    terminated = tool(app, "task_manager.py", "--json", "revoke", "--terminate", busy.id)
    assert terminated.returncode == 0, terminated.stdout
    # Not `active == []`: Celery drops a terminated request from `active` at once, dead or not (runlog/cancel.py).
    wait_for(lambda: process_gone(pid, created), 10, f"pool process {pid} that executed it to end")
    closed = row(app, busy.id)
    assert (closed.status, closed.state) == ("failed", "REVOKED") and closed.error.startswith("Revoked by"), \
        (closed.status, closed.state, closed.error)


def test_cleanup_forgets_and_closes_a_run_stuck_pending(app):
    stuck = app.extensions["celery"].send_task("tests.add", args=[1, 1])  # no worker: it stays pending
    wait_for(lambda: row(app, stuck.id), 5, "the run's row")
    out = tool(app, "task_manager.py", "cleanup", stuck.id)
    assert out.returncode == 0 and "record closed in the database" in out.stdout
    closed = row(app, stuck.id)
    assert closed.status == "failed" and closed.state == "REVOKED" and closed.finished_at


def test_stopping_retries_with_no_worker_to_take_the_revoke_is_503_and_changes_nothing(app):
    waiting = app.extensions["celery"].send_task("tests.always_fails")  # no worker: nobody can take a revoke
    wait_for(lambda: row(app, waiting.id), 5, "the run's row")
    resp = api_client(app).post(f"/scheduler/stop-retries/{waiting.id}/")
    body = resp.get_json()
    assert resp.status_code == 503 and body["ok"] is False and "no worker answered" in body["message"], body
    assert row(app, waiting.id).status == "pending", "a revoke nobody received must not end the row"


def test_the_panel_offers_the_same_stop_retries_action(app):
    start_worker(app)
    looping = app.extensions["celery"].send_task("tests.always_fails", kwargs={"countdown": 2})
    wait_for(lambda: (r := row(app, looping.id)) and r.retries >= 1, 20, "the first retry")
    body = api_client(app).post(f"/scheduler/stop-retries/{looping.id}/").get_json()
    assert body["status"] == "success" and body["ok"] and body["record"]["status"] == "failed"
    assert any("in their revoked list" in s["step"] for s in body["steps"])
    assert api_client(app).post("/scheduler/stop-retries/no-such/").status_code == 404
