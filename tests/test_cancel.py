"""Cancellation that really stops work, and records that tell the truth, against a real worker."""
import os
import signal
import time
from datetime import timedelta

import psutil

from models import Run, Schedule, db, utcnow
from panel.broker import remote
from panel.runlog import reconciler
from tests.helpers import api_client, run_row, start_worker, wait_for


def schedule(client, name, task, args, kwargs=None):
    return client.post("/api/tasks", json={"name": name, "task": task, "args": args, "kwargs": kwargs or {},
                                          "interval_seconds": 36000}).get_json()


def pool_pid(app, run, celery_task_id):
    """The pool process executing the run, as its worker reports it."""
    celery = app.extensions["celery"]
    return wait_for(lambda: remote.executing_pid(celery, run.worker, celery_task_id), 10, "the run's pool process")


def wait_running(app, celery_task_id):
    return wait_for(lambda: (r := run_row(app, celery_task_id)) and r.status == "running" and r, 20, "the run to start")


def test_cancel_task_stops_a_slow_crawl_for_real_and_the_rows_say_so(app, client, site):
    start_worker(app)
    task = schedule(client, "slow crawl", "crawl_url", [f"{site.base}/slow"], {"timeout": 300})
    celery_id = client.post(f"/api/tasks/{task['id']}/run").get_json()["celery_task_id"]
    run = wait_running(app, celery_id)
    assert site.server.slow_started.wait(10), "the crawl never reached the server"

    pool = psutil.Process(pool_pid(app, run, celery_id))
    resp = client.post(f"/scheduler/cancel-task/{task['id']}/")
    body = resp.get_json()
    assert resp.status_code == 200, body
    assert body["status"] == "success"
    assert body["message"] == "Task slow crawl has been cancelled and marked as failed"
    assert body["confirmed_stopped"] is True and body["stopped"] == [celery_id]
    # Our own eyes, not the panel's verdict: the crawl's socket is closed, its pool process is gone.
    assert site.server.slow_closed.wait(10), "the crawl's connection is still open"
    assert not pool.is_running() or pool.status() == psutil.STATUS_ZOMBIE, "the pool process still runs"

    row = run_row(app, celery_id)
    assert row.status == "failed" and row.error == "Task cancelled manually"
    assert row.finished_at is not None and (utcnow() - row.finished_at).total_seconds() < 10
    assert client.get(f"/api/tasks/{task['id']}").get_json()["status"] == "failed"


def test_a_task_ignoring_sigterm_is_killed_after_the_grace(app, client):
    start_worker(app)
    task = schedule(client, "stubborn", "tests.sleep_ignoring_term", [300])
    celery_id = client.post(f"/api/tasks/{task['id']}/run").get_json()["celery_task_id"]
    run = wait_running(app, celery_id)
    pool = psutil.Process(pool_pid(app, run, celery_id))
    body = client.post(f"/scheduler/cancel-task/{task['id']}/").get_json()
    assert body["confirmed_stopped"] is True and body["forced"] == [celery_id]
    assert not pool.is_running() or pool.status() == psutil.STATUS_ZOMBIE, "the pool process survived SIGKILL"
    assert run_row(app, celery_id).error == "Task cancelled manually"


def test_a_run_cancelled_while_queued_never_starts(make_app):
    app = make_app(WORKER_CONCURRENCY=1)
    client = api_client(app)
    start_worker(app)
    celery = app.extensions["celery"]
    occupant = celery.send_task("tests.sleep", args=[3])
    wait_running(app, occupant.id)
    queued = celery.send_task("tests.add", args=[20, 22])
    wait_for(lambda: run_row(app, queued.id), 5, "the queued run's row")
    body = client.post(f"/scheduler/cancel-run/{queued.id}/").get_json()
    assert body["status"] == "success" and body["revoked_queued"] == [queued.id]
    wait_for(lambda: run_row(app, occupant.id).status == "completed", 15, "the occupant to finish")
    log = app.extensions["supervisor"].log_path("worker")
    wait_for(lambda: f"Discarding revoked task: tests.add[{queued.id}]" in log.read_text(), 15,
             "the worker to discard the cancelled message when it reaches it")
    row = run_row(app, queued.id)
    assert row.status == "failed" and row.started_at is None and row.result is None
    assert row.error == "Task cancelled manually"
    assert client.post(f"/scheduler/cancel-run/{queued.id}/").status_code == 409


def test_a_worker_killed_with_sigkill_leaves_no_row_running(app):
    worker_pid = start_worker(app)
    celery = app.extensions["celery"]
    lost = celery.send_task("tests.sleep", args=[300])
    wait_running(app, lost.id)
    tree = [worker_pid] + [c.pid for c in psutil.Process(worker_pid).children(recursive=True)]
    for pid in tree:
        os.kill(pid, signal.SIGKILL)
    stop = reconciler.start(app, every_s=1)  # the panel's own loop: nobody opens a page
    try:
        row = wait_for(lambda: (r := run_row(app, lost.id)) and r.status == "failed" and r, 30, "reconciliation")
    finally:
        stop.set()
    assert "is gone" in row.error and row.finished_at is not None
    with app.app_context():
        assert db.session.query(Run).filter_by(status="running").count() == 0


def test_stop_all_tasks_stops_beat_from_sending_them(app, client):
    assert all(r.ok for r in app.extensions["supervisor"].start().values())
    for name in ("one", "two"):
        client.post("/api/tasks", json={"name": name, "task": "tests.add", "args": [1, 1], "interval_seconds": 1})

    def sent():
        with app.app_context():
            try:
                return db.session.query(Run).count()
            finally:
                db.session.remove()
    wait_for(lambda: sent() >= 2, 10, "the tasks to be sent")
    beat_log = app.extensions["supervisor"].log_path("beat")
    offset = beat_log.stat().st_size
    assert client.post("/scheduler/stop-all-tasks/").get_json()["disabled"] == 2
    wait_for(lambda: "schedule changed, reloading" in beat_log.read_text()[offset:], 10, "Beat to see the change")
    before = sent()
    time.sleep(3)  # an absence is shown over a window: three of its 1 s intervals, sending nothing
    assert sent() == before, "Beat still sent disabled tasks"
    assert client.post("/scheduler/start-all-tasks/").get_json()["enabled"] == 2
    wait_for(lambda: sent() > before, 10, "Beat to send them again")
    with app.app_context():
        assert all(t.enabled for t in db.session.query(Schedule))


def test_a_run_whose_end_never_reached_the_database_takes_the_outcome_its_backend_stored(app):
    """A pool process killed before it committed a run's end: the reconciler records what the backend holds."""
    start_worker(app)
    celery = app.extensions["celery"]
    ok, bad = celery.send_task("tests.add", args=[20, 22]), celery.send_task("tests.add", args=["a", 1])
    assert ok.get(timeout=30) == 42
    assert bad.get(timeout=30, propagate=False) is not None and bad.state == "FAILURE"
    for sent in (ok, bad):
        wait_for(lambda: run_row(app, sent.id).finished_at is not None, 10, "the run's end to be recorded")
    with app.app_context():  # as if neither end had been committed
        db.session.query(Run).filter(Run.celery_task_id.in_([ok.id, bad.id])).update(
            {"status": "running", "state": "STARTED", "finished_at": None, "result": None, "error": None,
             "traceback": None, "started_at": utcnow() - timedelta(seconds=60)})
        db.session.commit()
    assert reconciler.reconcile_once(app) == 2
    good, failed = run_row(app, ok.id), run_row(app, bad.id)
    assert (good.status, good.state, good.result, good.error) == ("completed", "SUCCESS", "42", None)
    assert good.finished_at is not None
    assert (failed.status, failed.state) == ("failed", "FAILURE") and failed.error.startswith("TypeError: ")
    assert "Traceback" in failed.traceback and failed.finished_at is not None
