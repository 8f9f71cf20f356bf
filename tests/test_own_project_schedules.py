"""Schedules kept in the panel while your own project is attached: the panel sends them by name to the
project's workers (its background process runs the DatabaseScheduler), and runs its own clean-up itself.
"""
import threading
import time

from models import Run, db
from panel import background
from panel.beat.in_panel import PAUSED_CHECK_S as PAUSE_CHECK_S
from tests.helpers import CELERY, PROJECT, api_client, wait_for

WAIT_S = 40


def _runs_of(app, schedule_id):
    with app.app_context():
        try:
            return db.session.query(Run).filter_by(scheduled_task_id=schedule_id).order_by(Run.queued_at).all()
        finally:
            db.session.remove()


def _ended(app, schedule_id, at_least):
    return wait_for(lambda: len(done := [r for r in _runs_of(app, schedule_id) if r.status == "completed"])
                    >= at_least and done, WAIT_S, f"{at_least} completed runs of schedule {schedule_id}")


def _panel_beat_gone():
    wait_for(lambda: not any(t.name == "panel-beat" and t.is_alive() for t in threading.enumerate()), 15,
             "the panel's schedule thread to stop")


def test_the_panels_schedules_are_sent_by_name_to_the_projects_workers(make_app):
    app = make_app(CELERY_APP="proj", CELERY_WORKDIR=str(PROJECT), CELERY_BIN=CELERY)
    handle = background.start(app)
    operator = api_client(app, "operator")
    try:
        wait_for(handle.acting.is_set, 10, "the background duties to start")
        assert operator.post("/scheduler/start-celery/").get_json()["status"] == "success"
        [nodes] = wait_for(lambda: [t["workers"] for t in operator.get("/api/registered-tasks").get_json()["tasks"]
                                    if t["name"] == "proj.add" and t["workers"]], WAIT_S,
                           "the monitor to learn what the project's worker registers")
        refused = operator.post("/api/tasks", json={"name": "crawl", "task": "crawl_url", "interval_seconds": 5})
        assert refused.status_code == 400 and refused.get_json()["field"] == "task", refused.get_json()
        created = operator.post("/api/tasks", json={"name": "add every second", "task": "proj.add", "args": [2, 3],
                                                    "interval_seconds": 1})
        assert created.status_code == 201, created.get_json()
        sid = created.get_json()["id"]
        runs = _ended(app, sid, 2)
        assert {(r.task_name, r.result) for r in runs} == {("proj.add", "5")}
        assert {r.worker for r in runs} == set(nodes), "run by the project's worker"
        schedule = operator.get(f"/api/tasks/{sid}").get_json()
        assert schedule["run_count"] >= 2 and schedule["last_run_at"], schedule
        assert schedule["status"] in ("completed", "pending", "running"), schedule
        # Stop Celery pauses them too, as it stops the embedded Beat: nothing piles up for a stopped worker.
        assert operator.post("/scheduler/stop-celery/").get_json()["status"] == "success"
        assert operator.get("/api/health").get_json()["app"]["schedules_paused"] is True
        sent = len(_runs_of(app, sid))
        time.sleep(3 * PAUSE_CHECK_S)  # an absence is shown over a window: three of the thread's checks
        assert len(_runs_of(app, sid)) <= sent + 1, "sent on while Celery was stopped"  # one tick may be in flight
        assert operator.post("/scheduler/start-celery/").get_json()["status"] == "success"
        _ended(app, sid, len(runs) + 1)
    finally:
        handle.stop()
        _panel_beat_gone()


def test_the_panels_own_clean_up_runs_inside_the_panel_when_no_worker_knows_it(make_app):
    app = make_app(CELERY_APP="proj", CELERY_WORKDIR=str(PROJECT), CELERY_BIN=CELERY)
    operator = api_client(app, "operator")
    made = operator.post("/api/tasks",
                         json={"name": "nightly clean-up", "task": "cleanup_results", "crontab": "0 3 * * *"})
    assert made.status_code == 201, made.get_json()
    cleanup = made.get_json()
    answer = operator.post(f"/api/tasks/{cleanup['id']}/run")
    assert answer.status_code == 200, answer.get_json()
    [run] = _ended(app, cleanup["id"], 1)
    assert (run.state, run.task_name) == ("SUCCESS", "cleanup_results")
    assert run.celery_task_id == answer.get_json()["celery_task_id"]
    assert operator.get(f"/api/tasks/{cleanup['id']}").get_json()["run_count"] == 1
