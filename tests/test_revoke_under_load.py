"""A revoke is true under load: on a worker whose machine is busy, `task_manager.py revoke` takes a queued message
out of its Redis list (it can never run) and revokes a reserved one through the worker, waiting for the worker's
revoked list to show it; each row ends REVOKED, neither task ever runs, and the tool says which way it went. A
cancelled queued run leaves the broker too, so a worker started later never runs it."""
import os
import signal
import subprocess
import sys
import time

import pytest
import redis

from panel import background
from panel.host.processes import WORKER
from panel.runlog import cancel, operations
from tests.helpers import (
    CELERY,
    PROJECT,
    api_client,
    ended,
    run_row,
    start_project_celery,
    start_worker,
    tool,
    wait_for,
)

WAIT_S = 60
BURNERS = 2  # busy processes: the two shared cores are loaded while the revokes run


@pytest.fixture
def loaded(make_app, redis_server):
    """The sample project's worker, one pool process taking one message ahead, the background running."""
    app = make_app(CELERY_APP="proj", CELERY_WORKDIR=str(PROJECT), CELERY_BIN=CELERY,
                   CELERY_WORKER_ARGS="--concurrency 1 --prefetch-multiplier 2")
    handle = background.start(app)
    burners = []
    try:
        wait_for(handle.acting.is_set, 10, "the background duties to start")
        start_project_celery(app, WAIT_S)
        yield app, burners
    finally:
        for proc in burners:
            proc.kill()
            proc.wait(timeout=10)
        handle.stop()


def sent(app, task, args):
    answer = api_client(app, "operator").post(f"/api/registered-tasks/{task}/send", json={"args": args})
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["celery_task_id"]


def waiting_ids(url):
    """The task ids in the Redis list of the queue "celery", read with a plain Redis client."""
    import json
    return [json.loads(raw)["headers"]["id"] for raw in redis.Redis.from_url(url).lrange("celery", 0, -1)]


def settled(seen, slows, marker):
    """The last three reads of the list agree, the marker waits, and the worker took some slow messages, not all."""
    last = seen[-1]
    return (len(seen) >= 3 and seen[-3] == seen[-2] == last and marker in last
            and any(task_id in last for task_id in slows) and any(task_id not in last for task_id in slows))


def test_a_revoke_under_load_takes_a_queued_message_out_and_confirms_a_reserved_one_through_the_worker(loaded):
    app, burners = loaded
    url, node = app.config["CELERY_BROKER_URL"], app.extensions["supervisor"].nodename
    blocker = sent(app, "proj.slow", [120])
    wait_for(lambda: run_row(app, blocker).status == "running", WAIT_S, "the blocker to run")
    slows = [sent(app, "proj.slow", [1]) for _ in range(3)]
    marker = sent(app, "proj.add", [2, 2])
    seen = []
    wait_for(lambda: seen.append(waiting_ids(url)) or settled(seen, slows, marker), WAIT_S,
             lambda: f"the worker to reserve some of {slows} and leave the rest waiting (the list read {seen[-1]})")
    # Which messages the worker took ahead depends on its prefetch window, so the test reads the list: a slow message
    # still waiting is the queued one (the one farthest from the worker's next pop), one the worker took is reserved.
    queued = next(task_id for task_id in seen[-1] if task_id in slows)
    reserved = next(task_id for task_id in slows if task_id not in seen[-1])
    burners += [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(BURNERS)]

    started = time.monotonic()
    out = tool(app, "task_manager.py", "revoke", queued, timeout=120)
    queued_s = time.monotonic() - started
    assert out.returncode == 0, out.stdout + out.stderr
    assert "message taken out of queue celery before any worker received it" in out.stdout, out.stdout
    assert queued not in waiting_ids(url) and marker in waiting_ids(url), "exactly that message left the list"
    row = run_row(app, queued)
    assert (row.state, row.status, row.started_at) == ("REVOKED", "failed", None)

    started = time.monotonic()
    out = tool(app, "task_manager.py", "revoke", reserved, timeout=120)
    reserved_s = time.monotonic() - started
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"revoke received by {node}: in their revoked list" in out.stdout, out.stdout
    assert "lost" not in out.stdout
    said = out.stdout
    assert run_row(app, reserved).state == "REVOKED"

    for proc in burners:
        proc.kill()
    cancel = api_client(app, "operator").post(f"/scheduler/cancel-run/{blocker}/")
    assert cancel.status_code == 200, cancel.get_json()
    ended(app, marker, WAIT_S)  # the queue's next message ran: what was ahead of it was taken or discarded
    log = app.extensions["supervisor"].log_path(WORKER).read_text(errors="replace")
    assert f"proj.slow[{queued}] received" not in log, "the taken message never reached the worker"
    assert f"Discarding revoked task: proj.slow[{reserved}]" in log and f"proj.slow[{reserved}] succeeded" not in log
    for task_id in (queued, reserved):
        row = run_row(app, task_id)
        assert (row.state, row.started_at) == ("REVOKED", None), (task_id, row.state, row.started_at)
    print(f"revoke under load: queued {queued_s:.1f} s, reserved {reserved_s:.1f} s (tool start included)\n{said}")


def test_a_revoke_the_worker_takes_after_the_reply_window_is_still_confirmed_and_ends_the_run(loaded, monkeypatch):
    """The worker is stopped (SIGSTOP) while the revoke is sent, so no reply can come in its window; it is let go
    only then, and the revoke is confirmed from its revoked list instead of being called lost."""
    app, _ = loaded
    celery, supervisor = app.extensions["celery"], app.extensions["supervisor"]
    url, node = app.config["CELERY_BROKER_URL"], supervisor.nodename
    blocker = sent(app, "proj.slow", [120])
    wait_for(lambda: run_row(app, blocker).status == "running", WAIT_S, "the blocker to run")
    reserved, marker = sent(app, "proj.slow", [1]), sent(app, "proj.add", [3, 3])
    wait_for(lambda: reserved not in waiting_ids(url), WAIT_S, "the worker to reserve the slow message")
    [main] = supervisor.host.scan()[WORKER]
    real_confirm, windows = cancel.confirm_revoked, []

    def let_go_then_confirm(celery_, task_id, names, *args, **kwargs):
        windows.append(names)  # the reply window passed with no acknowledgement: only now may the worker read
        os.kill(main.pid, signal.SIGCONT)
        return real_confirm(celery_, task_id, names, *args, **kwargs)
    monkeypatch.setattr(cancel, "confirm_revoked", let_go_then_confirm)
    os.kill(main.pid, signal.SIGSTOP)
    try:
        with app.app_context():
            report = operations.revoke(celery, supervisor.host, reserved, who="test")
    finally:
        os.kill(main.pid, signal.SIGCONT)
    assert windows == [[node]], "the revoke went through the worker and its acknowledgement missed the window"
    assert report["ok"] and report["steps"][0]["step"].startswith(f"revoke received by {node}"), report
    assert run_row(app, reserved).state == "REVOKED"
    api_client(app, "operator").post(f"/scheduler/cancel-run/{blocker}/")
    ended(app, marker, WAIT_S)
    log = supervisor.log_path(WORKER).read_text(errors="replace")
    assert f"Discarding revoked task: proj.slow[{reserved}]" in log and f"proj.slow[{reserved}] succeeded" not in log


def test_a_cancelled_queued_run_is_taken_out_of_its_queue_so_a_worker_started_later_never_runs_it(app):
    """With no worker running a broadcast revoke reaches nobody; the message itself leaves the broker instead."""
    celery, url = app.extensions["celery"], app.config["CELERY_BROKER_URL"]
    queued = celery.send_task("tests.add", args=[1, 2])
    wait_for(lambda: run_row(app, queued.id), 10, "the queued run's row")
    assert waiting_ids(url) == [queued.id]
    answer = api_client(app, "operator").post(f"/scheduler/cancel-run/{queued.id}/")
    assert answer.status_code == 200 and answer.get_json()["revoked_queued"] == [queued.id], answer.get_json()
    assert waiting_ids(url) == [], "the cancelled run's message is out of the broker"
    start_worker(app)
    marker = celery.send_task("tests.add", args=[2, 2])
    ended(app, marker.id, WAIT_S)
    log = app.extensions["supervisor"].log_path(WORKER).read_text(errors="replace")
    assert f"tests.add[{queued.id}] received" not in log
    assert run_row(app, queued.id).error == "Task cancelled manually"
