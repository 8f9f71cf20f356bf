"""After stop-celery the database tells the truth, row by row, on SQLite and PostgreSQL."""
import uuid
from datetime import timedelta

import psutil

from models import Run, Schedule, db, utcnow
from panel.host import processes
from panel.host.processes import BEAT, WORKER
from tests.helpers import api_client


def _seed_rows(local_worker):
    now = utcnow() - timedelta(minutes=5)
    running = Schedule(name="running one", task="tests.add", interval_seconds=60, status="running")
    done = Schedule(name="done one", task="tests.add", interval_seconds=60, status="completed")
    db.session.add_all([running, done])
    db.session.flush()
    rows = {
        "running": Run(celery_task_id=uuid.uuid4().hex, task_name="tests.add", status="running",
                       state="STARTED", scheduled_task_id=running.id, queued_at=now, started_at=now,
                       worker=local_worker),
        "elsewhere": Run(celery_task_id=uuid.uuid4().hex, task_name="tests.add", status="running",
                         state="STARTED", queued_at=now, started_at=now, worker="w9@another-host"),
        "pending": Run(celery_task_id=uuid.uuid4().hex, task_name="tests.add", status="pending",
                           state="PENDING", queued_at=now),
        "completed": Run(celery_task_id=uuid.uuid4().hex, task_name="tests.add", status="completed",
                             state="SUCCESS", queued_at=now, started_at=now, finished_at=now),
    }
    db.session.add_all(rows.values())
    db.session.commit()
    return {k: r.celery_task_id for k, r in rows.items()}


def test_stop_celery_marks_running_rows_failed_and_leaves_the_rest(make_app, backend):
    app = make_app(backend)
    with app.app_context():
        ids = _seed_rows(app.extensions["supervisor"].nodename)
    before = utcnow()
    body = api_client(app).post("/scheduler/stop-celery/").get_json()
    assert body["status"] == "success"
    assert "marked 1 running task(s) and 1 running log(s) as failed" in body["message"]
    with app.app_context():
        run = {k: db.session.query(Run).filter_by(celery_task_id=v).one() for k, v in ids.items()}
        assert run["running"].status == "failed" and run["running"].finished_at >= before
        assert run["running"].error == "Celery was stopped from the panel while this task was running"
        assert run["pending"].status == "pending" and run["pending"].finished_at is None
        assert run["elsewhere"].status == "running"  # another host's worker goes on: the reconciler asks it
        assert run["completed"].status == "completed" and run["completed"].error is None
        tasks = {t.name: t.status for t in db.session.query(Schedule)}
        assert tasks == {"running one": "failed", "done one": "completed"}


def test_processes_are_stopped_even_when_the_database_update_fails(make_app):
    app = make_app()
    client = api_client(app)
    started = client.post("/scheduler/start-celery/").get_json()
    assert started["status"] == "success", started
    with app.app_context():
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE task_logs")
    resp = client.post("/scheduler/stop-celery/")
    body = resp.get_json()
    assert resp.status_code == 500 and body["status"] == "error"
    assert "the database update failed" in body["message"]
    assert body["workers_killed"] == 1 and body["beats_killed"] == 1
    assert processes.scan(app.config["INSTANCE_PATH"]) == {WORKER: [], BEAT: []}
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                   for p in started["worker_pids"] + started["beat_pids"])


def test_a_slow_stop_never_blocks_the_run_log(make_app):
    """While stop-celery waits out the grace period, workers must still be able to record runs."""
    import threading

    from panel.runlog import recorder
    from tests.helpers import wait_for

    app = make_app(STOP_GRACE_S=3.0)
    client = api_client(app)
    assert client.post("/scheduler/start-celery/").get_json()["status"] == "success"
    stuck = app.extensions["celery"].send_task("tests.sleep_ignoring_term", args=[120])
    with app.app_context():
        wait_for(lambda: db.session.query(Run).filter_by(celery_task_id=stuck.id, status="running").first()
                 or db.session.rollback(), 30, "the stuck task to run")
        db.session.remove()
    worker = app.extensions["supervisor"].programs[WORKER]
    stopper = threading.Thread(target=lambda: client.post("/scheduler/stop-celery/"))
    stopper.start()
    wait_for(lambda: worker.state.value == "STOPPING", 10, "the stop to be under way (SIGTERM sent)")
    tid = uuid.uuid4().hex
    recorder.on_publish(sender="tests.add", body=([1], {}, {}), headers={"id": tid, "task": "tests.add"})
    written_during_the_stop = worker.state.value == "STOPPING" and stopper.is_alive()
    stopper.join(60)
    assert written_during_the_stop, "the write waited for the stop to finish"
    with app.app_context():
        assert db.session.query(Run).filter_by(celery_task_id=tid).count() == 1
