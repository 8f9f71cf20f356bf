"""The recorder's hot-path writes keep every type intact on SQLite and PostgreSQL."""
import uuid
from datetime import timedelta
from types import SimpleNamespace

from models import Run, Schedule, db
from panel.runlog import recorder


def _task(task_id, hostname="w1@host", schedule_id=None):
    """A task as the signals see it; a scheduled run's message carries the schedule header (an attribute here)."""
    headers = {} if schedule_id is None else {recorder.SCHEDULE_HEADER: schedule_id}
    return SimpleNamespace(name="tests.add", request=SimpleNamespace(id=task_id, hostname=hostname, retries=0,
                                                                     **headers))


def _schedule(app, name):
    """A scheduled-task row to link runs to: (id, updated_at)."""
    with app.app_context():
        sched = Schedule(name=name, task="tests.add", interval_seconds=5)
        db.session.add(sched)
        db.session.commit()
        return sched.id, sched.updated_at


def test_a_recorded_run_round_trips_through_each_backend(make_app, backend):
    app = make_app(backend)
    sched_id, updated_before = _schedule(app, "s")
    tid = uuid.uuid4().hex
    recorder.on_publish(sender="tests.add", body=([1, "ü"], {"k": [1, None]}, {}),
                        headers={"id": tid, "task": "tests.add", recorder.SCHEDULE_HEADER: sched_id})
    recorder.on_schedule_publish(headers={"id": tid, recorder.SCHEDULE_HEADER: sched_id})
    recorder.on_prerun(task_id=tid, task=_task(tid, schedule_id=sched_id))
    recorder.on_success(sender=_task(tid, schedule_id=sched_id), result={"answer": 42})
    recorder.flush()
    with app.app_context():
        run = db.session.query(Run).filter_by(celery_task_id=tid).one()
        assert (run.status, run.state, run.worker) == ("completed", "SUCCESS", "w1@host")
        assert run.args == [1, "ü"] and run.kwargs == {"k": [1, None]} and run.result == '{"answer": 42}'
        assert run.queued_at <= run.started_at <= run.finished_at and run.scheduled_task_id == sched_id
        sched = db.session.get(Schedule, sched_id)
        assert sched.status == "completed" and sched.run_count == 1 and sched.last_run_at is not None
        assert sched.updated_at >= updated_before


def test_a_run_sent_without_recording_is_inserted_when_it_starts(make_app):
    app = make_app()
    tid = uuid.uuid4().hex
    recorder.on_prerun(task_id=tid, task=_task(tid), args=[2, 3], kwargs={})
    recorder.flush()
    with app.app_context():
        run = db.session.query(Run).filter_by(celery_task_id=tid).one()
        assert run.status == "running" and run.args == [2, 3] and run.started_at is not None


def test_an_edit_that_reads_first_never_fails_when_a_worker_writes_meanwhile(make_app):
    """SQLite: a read-then-write unit of work must wait for the lock, not fail with 'database is locked'."""
    import sqlite3
    import threading

    from sqlalchemy import event

    from panel.beat import schedules

    app = make_app()
    registered = set(app.extensions["celery"].tasks)
    with app.app_context():
        task_id = schedules.create({"name": "e", "task": "tests.add", "args": [1], "interval_seconds": 5},
                                   registered).id
        engine = db.engine
    read_done, writing, errors = threading.Event(), threading.Event(), []

    def editor():
        try:
            with app.app_context():
                schedules.get(task_id)  # the read that opens the transaction
                read_done.set()
                assert writing.wait(10), "the worker's write never started"  # a worker writes now
                schedules.edit(task_id, {"interval_seconds": 7}, registered)
        except Exception as exc:  # noqa: BLE001 - the test reports any failure
            errors.append(exc)

    # The worker's write seen starting inside SQLite (its BEGIN IMMEDIATE, before it takes or waits for the write
    # lock): from there it either waits for the editor's lock, or takes the lock first and the editor's write must
    # cope.
    def trace(dbapi_conn, *_):
        dbapi_conn.set_trace_callback(
            lambda sql: sql.lstrip().upper().startswith(("INSERT", "BEGIN IMMEDIATE")) and writing.set())

    def untrace(dbapi_conn, *_):
        dbapi_conn.set_trace_callback(None)

    thread = threading.Thread(target=editor)
    thread.start()
    assert read_done.wait(10), errors
    # Traced from here: the editor's own connection, checked out already, must not count as the worker's write.
    event.listen(engine, "checkout", trace)
    event.listen(engine, "checkin", untrace)
    try:
        # The unit of work holds the write lock from its read on: any other writer can only wait for it.
        probe = sqlite3.connect(app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///"), timeout=0,
                                isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            lock_held = False
        except sqlite3.OperationalError as exc:
            lock_held = "database is locked" in str(exc)
        probe.close()
        tid = uuid.uuid4().hex
        recorder.on_publish(sender="tests.add", body=([1], {}, {}), headers={"id": tid, "task": "tests.add"})
        thread.join(15)
        recorder.flush()
    finally:
        event.remove(engine, "checkout", trace)
        event.remove(engine, "checkin", untrace)
    assert lock_held, "the edit's read left the write lock free: a worker's write could slip in before its write"
    assert writing.is_set() and errors == [], errors
    with app.app_context():
        assert db.session.get(Schedule, task_id).interval_seconds == 7
        assert db.session.query(Run).filter_by(celery_task_id=tid).count() == 1


def test_a_start_recorded_before_the_senders_insert_keeps_both_halves(make_app, backend):
    """The worker may start a run before the sender's after-publish insert commits: nothing is lost."""
    app = make_app(backend)
    sched_id, _ = _schedule(app, "race")
    tid = uuid.uuid4().hex
    recorder.on_prerun(task_id=tid, task=_task(tid), args=[1, 2], kwargs={})
    recorder.on_publish(sender="tests.add", body=([1, 2], {}, {}),
                        headers={"id": tid, "task": "tests.add", recorder.SCHEDULE_HEADER: sched_id})
    recorder.flush()
    with app.app_context():
        run = db.session.query(Run).filter_by(celery_task_id=tid).one()
        assert run.status == "running" and run.worker == "w1@host" and run.scheduled_task_id == sched_id
        assert run.queued_at <= run.started_at  # the sender's later clock never puts the queueing after the start


def test_a_senders_insert_stamped_after_the_start_never_puts_queueing_after_it(make_app, backend, monkeypatch):
    """The sender stamps its insert after the message left; the start it lost the race to still comes later."""
    app = make_app(backend)
    tid = uuid.uuid4().hex
    late = recorder.utcnow() + timedelta(seconds=1)  # the sender's clock reading, taken after a slow publish
    monkeypatch.setattr(recorder, "utcnow", lambda: late)
    recorder.on_publish(sender="tests.add", body=([1, 2], {}, {}), headers={"id": tid, "task": "tests.add"})
    monkeypatch.undo()
    recorder.on_prerun(task_id=tid, task=_task(tid), args=[1, 2], kwargs={})
    recorder.flush()
    with app.app_context():
        run = db.session.query(Run).filter_by(celery_task_id=tid).one()
        assert run.status == "running" and run.queued_at <= run.started_at < late


def test_every_recorder_statement_prepares_and_a_revoke_is_recorded(make_app, backend):
    app = make_app(backend)
    tid = uuid.uuid4().hex
    recorder.on_publish(sender="tests.add", body=([1], {}, {}), headers={"id": tid, "task": "tests.add"})
    recorder.on_revoked(request=SimpleNamespace(id=tid), terminated=True, signum=15)
    recorder.on_failure(sender=None, task_id=tid, exception=RuntimeError("after the revoke"), einfo=None)
    recorder.flush()
    with app.app_context():
        run = db.session.query(Run).filter_by(celery_task_id=tid).one()
        assert (run.status, run.state, run.error) == ("failed", "REVOKED", "Task terminated by signal 15")
