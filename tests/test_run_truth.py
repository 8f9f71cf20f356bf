"""The database never lies: every path that ends or re-routes a run writes its row, against real processes.

Each test is one way a row could lie, or one of the paths that end a run (revoke, purge, stop, rejection).
"""
import json
import threading

import psutil
import pytest

from models import Run, db
from panel.host.processes import BEAT, WORKER
from panel.runlog import outcomes, reconciler
from tests.helpers import OtherHostWorker, api_client, run_row, start_worker, tool, wait_for


def wait_status(app, celery_task_id, *statuses, timeout_s=30):
    return wait_for(lambda: (r := run_row(app, celery_task_id)) and r.status in statuses and r, timeout_s,
                    f"run {celery_task_id} to be {' or '.join(statuses)}")


def test_a_queued_run_revoked_from_the_command_line_ends_in_its_row_and_stays_ended(make_app):
    app = make_app(WORKER_CONCURRENCY=1)
    start_worker(app)
    celery = app.extensions["celery"]
    occupant = celery.send_task("tests.sleep", args=[300])
    wait_status(app, occupant.id, "running")
    queued = celery.send_task("tests.add", args=[1, 2])  # waits: the one pool process is busy
    wait_for(lambda: run_row(app, queued.id), 10, "the queued run's row")
    out = tool(app, "task_manager.py", "--json", "revoke", queued.id)
    assert out.returncode == 0, out.stdout + out.stderr
    row = run_row(app, queued.id)
    assert (row.status, row.state) == ("failed", "REVOKED") and row.error.startswith("Revoked by cli:")
    revoked_at = row.finished_at
    assert api_client(app, "operator").post(f"/scheduler/cancel-run/{occupant.id}/").status_code == 200  # frees it
    log = app.extensions["supervisor"].log_path(WORKER)
    wait_for(lambda: f"Discarding revoked task: tests.add[{queued.id}]" in log.read_text(), 20,
             "the worker to discard the revoked message when it reaches it")
    row = run_row(app, queued.id)
    assert row.started_at is None and row.finished_at == revoked_at and row.error.startswith("Revoked by cli:")


def test_a_revoke_with_no_worker_takes_the_waiting_message_out_on_redis_and_leaves_the_row_open_on_amqp(broker_app):
    app = broker_app
    queued = app.extensions["celery"].send_task("tests.add", args=[1, 2])  # no worker at all
    wait_for(lambda: run_row(app, queued.id), 10, "the queued run's row")
    out = tool(app, "task_manager.py", "revoke", queued.id)
    if app.config["CELERY_BROKER_URL"].startswith("redis"):  # out of its list: no worker can ever get it
        assert out.returncode == 0 and "message taken out of queue celery" in out.stdout, out.stdout
        assert run_row(app, queued.id).state == "REVOKED"
        assert api_client(app).get("/api/queues/celery/messages").get_json()["messages"] == []
        return
    assert out.returncode == 1 and "no worker answered" in out.stdout, out.stdout
    assert run_row(app, queued.id).status == "pending"  # it will run when a worker takes it: that is the truth


def test_runs_whose_messages_are_purged_end_with_the_purge_as_their_reason(app):
    celery, operator = app.extensions["celery"], api_client(app, "operator")
    sent = [celery.send_task("tests.add", args=[n, n], queue="purged-here") for n in range(3)]
    wait_for(lambda: all(run_row(app, s.id) for s in sent), 10, "the three rows")
    resp = operator.post("/api/queues/purged-here/purge", json={"confirm": True})
    assert resp.status_code == 200 and resp.get_json()["removed"] == 3
    for s in sent:
        row = run_row(app, s.id)
        assert (row.status, row.state) == ("failed", "REVOKED") and "purged from queue purged-here" in row.error


def test_a_message_the_worker_rejects_ends_its_run(app):
    start_worker(app)
    unknown = app.extensions["celery"].send_task("no.such.task_type", args=[1])
    row = wait_status(app, unknown.id, "failed")
    assert row.error.startswith("Rejected by the worker: an unknown task type 'no.such.task_type'")


def test_a_stopped_retry_loop_is_told_as_stopped_by_check_and_left_out_of_all_retries(app):
    start_worker(app)
    looping = app.extensions["celery"].send_task("tests.always_fails", kwargs={"countdown": 300})
    wait_for(lambda: (r := run_row(app, looping.id)) and r.retries >= 1, 20, "the first retry")
    assert tool(app, "stop_retries.py", looping.id).returncode == 0
    check = tool(app, "stop_retries.py", "--check", looping.id)
    assert check.returncode == 1, check.stdout  # not retrying: like grep, 0 only while it loops
    assert "not retrying: stopped, REVOKED at" in check.stdout and "Retry loop stopped manually by cli:" in check.stdout
    listed = json.loads(tool(app, "stop_retries.py", "--json", "--all-retries").stdout)
    assert looping.id not in [t["id"] for t in listed["tasks"]]  # the worker still holds it, revoked, till due


def test_stop_celery_revokes_its_workers_waiting_retries_so_they_never_come_back(app):
    client = api_client(app, "operator")
    assert client.post("/scheduler/start-celery/").get_json()["status"] == "success"
    looping = app.extensions["celery"].send_task("tests.always_fails", kwargs={"countdown": 300})
    wait_for(lambda: (r := run_row(app, looping.id)) and r.retries >= 1 and r.state == "RETRY", 20, "a retry")
    body = client.post("/scheduler/stop-celery/").get_json()
    assert body["status"] == "success" and "1 run(s) waiting for a retry revoked" in body["message"], body
    row = run_row(app, looping.id)
    assert (row.status, row.state, row.next_retry_at) == ("failed", "REVOKED", None)
    assert row.error == outcomes.STOPPED_WAITING.reason
    log = app.extensions["supervisor"].log_path(WORKER)
    offset = log.stat().st_size
    start_worker(app)  # the warm shutdown put the retry's message back: the new worker must discard it
    wait_for(lambda: f"Discarding revoked task: tests.always_fails[{looping.id}]" in log.read_text()[offset:], 30,
             "the restarted worker to discard the revoked retry")
    assert run_row(app, looping.id).error == outcomes.STOPPED_WAITING.reason


def test_a_stop_during_a_run_ends_it_as_stopped_even_with_the_reconciler_racing(make_app, monkeypatch):
    """Only the control lock keeps the reconciler off: the run is old enough for it at once (MIN_AGE_S 0), and
    during the grace the stopping worker answers no inspect, which is exactly what the reconciler ends as lost. The
    grace outlasts several passes (a silent worker gets SILENT_WAIT_S, shortened here, before its runs are lost)."""
    from panel.broker import remote
    from panel.runlog import settle
    monkeypatch.setattr(settle, "SILENT_WAIT_S", 1.0)
    app = make_app(STOP_GRACE_S=10.0)
    client = api_client(app, "operator")
    assert client.post("/scheduler/start-celery/").get_json()["status"] == "success"
    celery, worker = app.extensions["celery"], app.extensions["supervisor"].nodename
    stuck = celery.send_task("tests.sleep_ignoring_term", args=[120])
    wait_status(app, stuck.id, "running")
    monkeypatch.setattr(reconciler, "MIN_AGE_S", 0)
    passes, takeable, stopping, answer = [], [], threading.Event(), {}

    def stop():
        stopping.set()
        answer.update(client.post("/scheduler/stop-celery/").get_json())
    stopper = threading.Thread(target=stop)
    stopper.start()
    stopping.wait(5)
    while stopper.is_alive():  # the reconciler asks again and again while the stop waits out the grace
        passes.append(reconciler.reconcile_once(app))
        with app.app_context():  # what an unguarded pass would have seen: the run listed, its worker silent
            listed = stuck.id in reconciler.running_by_worker().get(worker, [])
        takeable.append(listed and remote.active_ids(celery, worker, 0.5) is None and stopper.is_alive())
    stopper.join()
    assert len(passes) >= 2 and set(passes) == {0}, passes  # it never took the stopping worker's run
    assert any(takeable), "no race: no pass met the run listed and its worker silent, so the lock was never needed"
    assert "marked 0 running task(s) and 1 running log(s) as failed" in answer["message"], answer  # ad hoc: no schedule
    assert run_row(app, stuck.id).error == outcomes.STOPPED.reason


def test_stop_celery_leaves_another_hosts_worker_and_its_runs_alone(app, tmp_path):
    elsewhere = OtherHostWorker(app, tmp_path, queues="elsewhere")
    try:
        client = api_client(app, "operator")
        assert client.post("/scheduler/start-celery/").get_json()["status"] == "success"
        remote_run = app.extensions["celery"].send_task("tests.sleep", args=[6], queue="elsewhere")
        row = wait_status(app, remote_run.id, "running")
        assert row.worker == elsewhere.node
        body = client.post("/scheduler/stop-celery/").get_json()
        assert body["workers_killed"] == 1 and "marked 0 running task(s) and 0 running log(s)" in body["message"]
        assert elsewhere.alive() and run_row(app, remote_run.id).status == "running"
        assert wait_status(app, remote_run.id, "completed").error is None  # it ended as it really did
    finally:
        elsewhere.stop()


@pytest.mark.parametrize("program", [WORKER, BEAT])
def test_a_program_killed_while_the_panel_stops_it_is_never_recorded_as_a_crash(make_app, program):
    """The stop holds the control lock; the unasked-exit check waits for it, then sees the intent."""
    from panel import background
    app = make_app(WATCHDOG_INTERVAL_S=0.2)
    handle = background.start(app)
    try:
        wait_for(handle.acting.is_set, 10, "the background duties")
        assert app.extensions["supervisor"].start((program,))[program].ok
        assert api_client(app, "operator").post("/scheduler/stop-celery/").get_json()["status"] == "success"
        start = app.extensions.get("watchdog_ticks", 0)
        wait_for(lambda: app.extensions.get("watchdog_ticks", 0) >= start + 5, 20, "five watchdog ticks")
        with app.app_context():
            from models import ProcessEvent
            assert db.session.query(ProcessEvent).filter_by(program=program, action="crash").count() == 0
    finally:
        handle.stop()


def test_the_outcome_service_keeps_the_first_ending_of_a_run(make_app, backend):
    """Two paths racing: the first ending stays, the second changes nothing (SQLite and PostgreSQL)."""
    app = make_app(backend)
    with app.app_context():
        run = Run(celery_task_id="race-1", task_name="tests.add", status="running", state="STARTED")
        db.session.add(run)
        db.session.commit()
        assert outcomes.end(["race-1"], outcomes.STOPPED).runs == 1
        assert outcomes.end(["race-1"], outcomes.lost("w@h", "is gone")).runs == 0
        assert outcomes.from_backend("race-1", {"status": "SUCCESS", "result": 3}) == 0
        row = db.session.query(Run).filter_by(celery_task_id="race-1").one()
        assert (row.status, row.state, row.error) == ("failed", "FAILURE", outcomes.STOPPED.reason)


def test_a_pool_process_that_ran_a_cancelled_task_is_gone(app, client):
    """Cancellation proven with our own eyes: the pool process that ran it no longer exists (or is another)."""
    start_worker(app)
    task = client.post("/api/tasks", json={"name": "stuck", "task": "tests.sleep", "args": [300],
                                           "interval_seconds": 36000}).get_json()
    celery_id = client.post(f"/api/tasks/{task['id']}/run").get_json()["celery_task_id"]
    wait_status(app, celery_id, "running")
    from panel.broker import remote
    worker = app.extensions["supervisor"].nodename
    pid = wait_for(lambda: remote.executing_pid(app.extensions["celery"], worker, celery_id), 10, "its pool pid")
    created = psutil.Process(pid).create_time()
    assert client.post(f"/scheduler/cancel-task/{task['id']}/").get_json()["confirmed_stopped"] is True
    gone = not psutil.pid_exists(pid) or psutil.Process(pid).create_time() != created \
        or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert gone, f"pool process {pid} still runs the cancelled task"


def _cancel_on_another_node(app, tmp_path, task, args):
    """Send `task` to a worker of another node name, wait until it runs, cancel it; the answer and its pool pid."""
    from panel.broker import remote
    elsewhere = OtherHostWorker(app, tmp_path, queues="elsewhere")
    celery = app.extensions["celery"]
    sent = celery.send_task(task, args=args, queue="elsewhere")
    assert wait_status(app, sent.id, "running").worker == elsewhere.node
    pid = wait_for(lambda: remote.executing_pid(celery, elsewhere.node, sent.id), 10, "its pool pid")
    answer = api_client(app, "operator").post(f"/scheduler/cancel-run/{sent.id}/").get_json()
    return elsewhere, sent.id, pid, answer


def _gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_cancel_on_another_nodes_worker_stops_it_through_that_worker_and_is_confirmed(app, tmp_path):
    elsewhere, celery_id, pid, answer = _cancel_on_another_node(app, tmp_path, "tests.sleep", [300])
    try:
        assert answer["confirmed_stopped"] is True and answer["stopped"] == [celery_id], \
            (answer, elsewhere.log_path.read_text()[-3000:])
        assert answer["forced"] == [], "a remote worker's process is never signalled from here"
        # Our own eyes: the remote pool process that ran it is gone, and that worker lives on.
        wait_for(lambda: _gone(pid), 10, "the remote pool process to end")
        assert elsewhere.alive() and run_row(app, celery_id).error == outcomes.CANCELLED.reason
    finally:
        elsewhere.stop()


def test_a_cancel_another_nodes_worker_cannot_carry_out_is_reported_not_confirmed(app, tmp_path):
    """The remote path cannot SIGKILL: a task that ignores SIGTERM there is named in not_confirmed, not hidden."""
    elsewhere, celery_id, pid, answer = _cancel_on_another_node(app, tmp_path, "tests.sleep_ignoring_term", [300])
    try:
        assert answer["confirmed_stopped"] is False and answer["not_confirmed"] == [celery_id], answer
        assert not _gone(pid), "the answer says not confirmed, so the process must really still run"
        assert run_row(app, celery_id).status == "failed"
    finally:
        elsewhere.stop()
