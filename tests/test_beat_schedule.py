"""The DB-backed Beat and the run log, against a real Redis, worker and Beat, on SQLite and PostgreSQL."""
import json
import time

from models import Schedule, ScheduleChange, db
from panel.beat import schedules
from panel.host import processes
from panel.host.processes import BEAT
from tests.helpers import add_task, free_port, rows, start, wait_for

EDIT_SEEN_S = 5


def task_row(app, name):
    with app.app_context():
        try:
            return db.session.query(Schedule).filter_by(name=name).one()
        finally:
            db.session.remove()


def edit_task(app, task_id, **data):
    with app.app_context():
        schedules.edit(task_id, data, set(app.extensions["celery"].tasks))
        db.session.remove()


def test_interval_task_produces_completed_runs_with_worker_names(make_app, backend, site):
    app = make_app(backend)
    task_id = add_task(app, name="crawl ok", task="crawl_url", args=[f"{site.base}/ok"], interval_seconds=2)
    start(app)
    wait_for(lambda: len(rows(app, scheduled_task_id=task_id, status="completed")) >= 2, 20, "two completed runs")
    nodename = app.extensions["supervisor"].nodename
    for run in rows(app, scheduled_task_id=task_id, status="completed")[:2]:
        assert run.worker == nodename and run.state == "SUCCESS"
        assert run.queued_at <= run.started_at <= run.finished_at
        result = json.loads(run.result)
        assert result["status_code"] == 200 and result["title"] == "Page /ok" and result["size"] > 0
        assert run.args == [f"{site.base}/ok"]
    task = task_row(app, "crawl ok")
    assert task.run_count >= 2 and task.last_run_at is not None and task.next_run_at is not None
    assert task.status in ("completed", "pending", "running")


def beat_reloads(app):
    """How often Beat said it saw the schedule change (its own log line)."""
    return app.extensions["supervisor"].log_path(BEAT).read_text(errors="replace").count("schedule changed, reloading")


def test_schedule_edits_are_seen_within_5s_without_a_restart(make_app):
    app = make_app()
    start(app)
    beat_pids = [r.pid for r in processes.scan(app.config["INSTANCE_PATH"])[BEAT]]

    created = add_task(app, name="often", task="tests.add", args=[1, 2], interval_seconds=1)
    wait_for(lambda: rows(app, scheduled_task_id=created), EDIT_SEEN_S + 2, "a created task to be sent")

    seen = beat_reloads(app)
    edit_task(app, created, interval_seconds=3600)
    wait_for(lambda: beat_reloads(app) > seen, EDIT_SEEN_S, "Beat to see the edit (it says it reloads)")
    before = len(rows(app, scheduled_task_id=created))
    time.sleep(3)  # an absence is shown over a window: three of the old 1 s intervals
    assert len(rows(app, scheduled_task_id=created)) == before, "an edited interval was not honoured"

    other = add_task(app, name="to disable", task="tests.add", args=[2, 2], interval_seconds=1)
    wait_for(lambda: rows(app, scheduled_task_id=other), EDIT_SEEN_S + 2, "the second task to be sent")
    seen = beat_reloads(app)
    with app.app_context():
        schedules.set_enabled(other, False)
        db.session.remove()
    wait_for(lambda: beat_reloads(app) > seen, EDIT_SEEN_S, "Beat to see the disable")
    before = len(rows(app, scheduled_task_id=other))
    time.sleep(3)  # an absence is shown over a window
    assert len(rows(app, scheduled_task_id=other)) == before, "a disabled task was still sent"

    third = add_task(app, name="to delete", task="tests.add", args=[3, 3], interval_seconds=1)
    wait_for(lambda: rows(app, task_name="tests.add", scheduled_task_id=third), EDIT_SEEN_S + 2, "the third task")
    seen = beat_reloads(app)
    with app.app_context():
        schedules.delete(third)
        db.session.remove()
    wait_for(lambda: beat_reloads(app) > seen, EDIT_SEEN_S, "Beat to see the delete")
    before = len(rows(app, task_name="tests.add"))
    time.sleep(3)  # an absence is shown over a window
    assert len(rows(app, task_name="tests.add")) == before, "a deleted task was still sent"
    assert [r.pid for r in processes.scan(app.config["INSTANCE_PATH"])[BEAT]] == beat_pids


def test_crawl_of_a_500_is_a_recorded_result_not_a_retry(make_app, site):
    app = make_app()
    start(app, processes.WORKER)
    result = app.extensions["celery"].send_task("crawl_url", args=[f"{site.base}/500"])
    wait_for(lambda: rows(app, celery_task_id=result.id, status="completed"), 20, "the crawl to finish")
    run = rows(app, celery_task_id=result.id)[0]
    assert json.loads(run.result)["status_code"] == 500
    assert run.retries == 0 and site.hits.count("/500") == 1


def test_crawl_of_a_refusing_host_retries_then_fails_with_the_count(make_app, backend):
    app = make_app(backend)
    start(app, processes.WORKER)
    url = f"http://127.0.0.1:{free_port()}/"
    result = app.extensions["celery"].send_task(
        "crawl_url", args=[url], kwargs={"max_retries": 2, "backoff_s": 0.2, "timeout": 2})
    wait_for(lambda: rows(app, celery_task_id=result.id, status="failed"), 30, "the crawl to give up")
    run = rows(app, celery_task_id=result.id)[0]
    assert run.state == "FAILURE" and run.retries == 2
    assert "ConnectionError" in run.error and run.traceback and run.finished_at


def test_bad_rows_are_disabled_with_a_reason_and_the_rest_still_runs(make_app):
    app = make_app()
    with app.app_context():
        db.session.add_all([
            Schedule(name="unknown", task="no.such.task", interval_seconds=1),
            Schedule(name="bad cron", task="tests.add", args=[1, 1], crontab="99 * * * *"),
            Schedule(name="no schedule", task="tests.add", args=[1, 1]),
            Schedule(name="good", task="tests.add", args=[1, 1], interval_seconds=1),
        ])
        db.session.commit()
        db.session.remove()
    start(app)
    wait_for(lambda: rows(app, task_name="tests.add", status="completed"), 15, "the good task to run")
    for name, words in (("unknown", "not a registered"), ("bad cron", "crontab"), ("no schedule", "interval")):
        row = task_row(app, name)
        assert row.enabled is False and words in row.disabled_reason, (name, row.disabled_reason)
    assert processes.scan(app.config["INSTANCE_PATH"])[BEAT], "Beat crashed on a bad row"
    assert {r.scheduled_task_id for r in rows(app)} == {task_row(app, "good").id}


def test_the_change_marker_moves_with_edits_and_bulk_edits_but_not_bookkeeping(make_app, backend):
    app = make_app(backend)
    registered = set(app.extensions["celery"].tasks)

    def version():
        db.session.remove()
        return (db.session.get(ScheduleChange, 1) or ScheduleChange(version=0)).version

    with app.app_context():
        v0 = version()
        task = schedules.create({"name": "m", "task": "tests.add", "args": [1, 2], "interval_seconds": 5}, registered)
        task_id = task.id
        assert version() == v0 + 1
        row = db.session.get(Schedule, task_id)
        row.status, row.run_count = "running", 3
        db.session.commit()
        assert version() == v0 + 1, "run bookkeeping must not reload Beat"
        schedules.edit(task_id, {"interval_seconds": 9}, registered)
        assert version() == v0 + 2
        assert schedules.set_all_enabled(False) == 1
        assert version() == v0 + 3
        schedules.delete(task_id)
        assert version() == v0 + 4


def test_pool_processes_writing_at_once_lose_no_rows(make_app, backend):
    app = make_app(backend, WORKER_CONCURRENCY=4)
    start(app, processes.WORKER)
    celery = app.extensions["celery"]
    ids = [celery.send_task("tests.add", args=[i, i]).id for i in range(200)]
    wait_for(lambda: len(rows(app, status="completed")) == 200, 60, "200 completed runs")
    done = rows(app)
    assert {r.celery_task_id for r in done} == set(ids)
    assert all(r.status == "completed" and r.result == str(2 * int(r.args[0])) for r in done)
    assert len({r.worker for r in done}) == 1
