"""A pool process's run changes commit behind its tasks: in order, in batches, none lost to a bad neighbour."""
import sqlite3
import threading
import time
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest

from models import Run, db, utcnow
from panel.broker import remote
from panel.runlog import recorder, statements
from panel.runlog.writer import RunWriter
from tests.helpers import SqliteLock, start_worker, wait_for


def test_changes_commit_in_the_order_queued_and_share_transactions_under_a_burst():
    committed, gate = [], threading.Event()

    def commit(changes):
        gate.wait(5)  # the first batch is slow: everything queued meanwhile goes in the next one
        committed.append(list(changes))

    writer = RunWriter(commit)
    for n in range(50):
        writer.put((("step", {"n": n}),))
    gate.set()
    assert writer.flush(5)
    flat = [steps[0][1]["n"] for batch in committed for steps in batch]
    assert flat == list(range(50))
    assert len(committed) < 50  # batched, not one transaction per change


def test_flush_waits_for_a_slow_commit_and_a_failing_batch_does_not_stop_the_writer():
    committed = []

    def commit(changes):
        if any(steps == "boom" for steps in changes):
            raise RuntimeError("rejected")
        time.sleep(0.3)
        committed.extend(changes)

    writer = RunWriter(commit)
    writer.put("boom")
    assert writer.flush(5)
    writer.put("after")
    assert writer.flush(5) and committed == ["after"]


def _task(task_id):
    return SimpleNamespace(name="tests.add", request=SimpleNamespace(id=task_id, hostname="w1@host", retries=0))


def _insert(task_id, state="PENDING"):
    return (("insert", {"celery_task_id": task_id, "task_name": "tests.add", "scheduled_task_id": None,
                        "status": "pending", "state": state, "args": [], "kwargs": {}, "queued_at": utcnow(),
                        "started_at": None, "worker": None, "retries": 0, "next_retry_at": None}),)


def test_a_change_the_database_rejects_does_not_take_the_rest_of_its_batch_along(make_app, backend):
    app = make_app(backend)
    good = [uuid.uuid4().hex for _ in range(2)]
    # state NULL breaks NOT NULL: an error the database will never accept, not a refusal to keep
    recorder._write_batch([_insert(good[0]), _insert(uuid.uuid4().hex, state=None), _insert(good[1])])
    with app.app_context():
        names = {r.celery_task_id for r in db.session.query(Run)}
    assert names == set(good)


def test_a_real_pool_process_replaced_after_its_task_writes_what_it_queued_before_it_goes(make_app):
    """One task per pool process: it exits right after its task, while SQLite is locked; its changes land."""
    app = make_app(WORKER_CONCURRENCY=1, WORKER_MAX_TASKS_PER_CHILD=1)
    start_worker(app)
    celery, node = app.extensions["celery"], app.extensions["supervisor"].nodename
    [first] = wait_for(lambda: remote.pool_pids(celery, node), 10, "the worker's pool process")
    task_id = str(uuid.uuid4())
    # Sent from a thread: this process records the send too, and that insert waits for the lock (up to the
    # busy timeout); the lock must go as soon as the task is done, not when the send returns.
    sender = threading.Thread(target=celery.send_task, args=("tests.add",), kwargs={"args": [2, 3], "task_id": task_id})
    with SqliteLock(app, 30):
        sender.start()
        sent = celery.AsyncResult(task_id)
        assert sent.get(timeout=30) == 5  # done (its result is in Redis) while its run changes wait for the lock
        assert run_row_or_none(app, sent.id) is None or run_row_or_none(app, sent.id).status != "completed"
    sender.join(30)
    wait_for(lambda: (pids := remote.pool_pids(celery, node)) and first not in pids, 30,
             "the pool process to exit after its one task")
    row = wait_for(lambda: (r := run_row_or_none(app, sent.id)) and r.status == "completed" and r, 20,
                   "the run's changes, written before its process went")
    assert row.result == "5" and row.started_at and row.finished_at


def run_row_or_none(app, celery_task_id):
    """The row in a fresh, deferred read: it does not wait for the test's own lock."""
    conn = sqlite3.connect(app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///"), timeout=0.1)
    try:
        found = conn.execute("SELECT status, result, started_at, finished_at FROM task_logs WHERE celery_task_id=?",
                             (celery_task_id,)).fetchone()
    except sqlite3.OperationalError:  # locked for reading too (EXCLUSIVE): nothing to see yet
        return None
    finally:
        conn.close()
    if found is None:
        return None
    return SimpleNamespace(status=found[0], result=found[1], started_at=found[2], finished_at=found[3])


def test_a_real_prefork_worker_records_every_run_of_a_burst_even_when_stopped_right_after(make_app):
    app = make_app(WORKER_CONCURRENCY=2)
    start_worker(app)
    celery = app.extensions["celery"]
    assert celery.send_task("tests.writes_behind").get(timeout=30) is True
    sent = [celery.send_task("tests.add", args=[n, n]) for n in range(200)]
    assert [r.get(timeout=60) for r in sent] == [2 * n for n in range(200)]
    killed, _ = app.extensions["supervisor"].stop(("worker",))  # warm shutdown right after the last result
    assert killed["worker"] == 1
    with app.app_context():
        runs = db.session.query(Run).filter(Run.celery_task_id.in_([r.id for r in sent])).all()
        assert len(runs) == 200
        assert {(r.status, r.state) for r in runs} == {("completed", "SUCCESS")}
        assert all(r.worker and r.started_at and r.finished_at for r in runs)


def _started(task_id, started_at):
    return (("started", {"celery_task_id": task_id, "task_name": "tests.add", "scheduled_task_id": None,
                         "status": "running", "state": "STARTED", "args": [1, 2], "kwargs": {}, "queued_at": started_at,
                         "started_at": started_at, "worker": "w1@host", "retries": 0, "next_retry_at": None,
                         "eta": None, "retry_of": None}),)


def _succeeded(task_id, now, result='"needle-in-result"'):
    return (("succeeded", {"tid": task_id, "now": now, "result": result}),)


def test_merged_joins_only_a_start_and_its_own_success_side_by_side():
    now = utcnow()
    [ran] = statements.merged([_started("a", now), _succeeded("a", now)])
    assert [name for name, _ in ran] == ["ran"]
    assert (ran[0][1]["status"], ran[0][1]["state"], ran[0][1]["error"]) == ("completed", "SUCCESS", None)
    apart = [_started("a", now), _insert("b"), _succeeded("a", now)]
    assert statements.merged(apart) == apart  # something else between: written as queued
    other = [_started("a", now), _succeeded("b", now)]
    assert statements.merged(other) == other
    failed = [_started("a", now), (("failed", {"tid": "a", "now": now, "error": "E", "tb": None}),)]
    assert statements.merged(failed) == failed


def _row(app, task_id):
    with app.app_context():
        run = db.session.query(Run).filter_by(celery_task_id=task_id).one()
        db.session.remove()
        return run


def test_a_start_and_success_written_as_one_leave_the_row_the_two_writes_in_turn_leave(make_app, backend):
    """Merged or not, a sent run, a run the sender never recorded and a run the panel had ended come out alike."""
    from panel.runlog import outcomes
    app = make_app(backend)
    pairs = [(uuid.uuid4().hex, uuid.uuid4().hex) for _ in range(3)]  # (merged, in turn)
    sent, unsent, cancelled = pairs
    for task_id in (*sent, *cancelled):
        recorder._write_batch([_insert(task_id)])
    with app.app_context():
        for task_id in cancelled:
            outcomes.end([task_id], outcomes.CANCELLED)
    started_at = utcnow()
    finished_at = started_at + timedelta(seconds=1.5)
    for merged_id, in_turn_id in pairs:
        recorder._write_batch([_started(merged_id, started_at), _succeeded(merged_id, finished_at)])
        recorder._attempt(_started(in_turn_id, started_at))
        recorder._attempt(_succeeded(in_turn_id, finished_at))
    fields = ("status", "state", "worker", "started_at", "finished_at", "result", "error", "args", "retries")
    for merged_id, in_turn_id in pairs:
        merged, in_turn = _row(app, merged_id), _row(app, in_turn_id)
        assert [getattr(merged, f) for f in fields] == [getattr(in_turn, f) for f in fields]
        assert merged.status == "completed" and merged.error is None and merged.result == '"needle-in-result"'
        assert merged.runtime_s == pytest.approx(1.5, abs=0.01) == in_turn.runtime_s
        assert merged.queued_at <= merged.started_at
    if backend == "sqlite":  # the result is in the search index, as an update writes it there
        with app.app_context(), db.engine.connect() as conn:
            found = {r[0] for r in conn.exec_driver_sql(
                "SELECT celery_task_id FROM task_logs WHERE id IN "
                "(SELECT rowid FROM run_search_end WHERE run_search_end MATCH '\"needle-in-result\"')")}
        assert found == {task_id for pair in pairs for task_id in pair}


def test_a_scheduled_runs_badge_follows_it_in_a_real_worker(make_app):
    """The pool process moves a schedule's badge only for runs whose message names the schedule: the header must
    reach the worker's request, or the badge would never move."""
    from models import Schedule
    app = make_app()
    with app.app_context():
        schedule = Schedule(name="badge", task="tests.add", interval_seconds=3600)
        db.session.add(schedule)
        db.session.commit()
        schedule_id = schedule.id
    start_worker(app)
    celery = app.extensions["celery"]

    def badge():
        with app.app_context():
            found = db.session.get(Schedule, schedule_id)
            db.session.remove()
            return found.status, found.run_count

    headers = {recorder.SCHEDULE_HEADER: schedule_id}
    assert celery.send_task("tests.add", args=[2, 3], headers=headers).get(timeout=30) == 5
    wait_for(lambda: badge() == ("completed", 1), 20, lambda: f"the badge to say completed, not {badge()}")
    failing = celery.send_task("tests.add", args=[2], headers=headers)  # a TypeError in the worker
    wait_for(lambda: badge() == ("failed", 2), 20, lambda: f"the badge to say failed, not {badge()}")
    assert _row(app, failing.id).scheduled_task_id == schedule_id
    other = celery.send_task("tests.add", args=[1, 1])  # no schedule's: the badge stays
    wait_for(lambda: (r := run_row_or_none(app, other.id)) and r.status == "completed", 20, "the other run to end")
    assert badge() == ("failed", 2)


def test_a_workers_main_process_writes_at_once_and_its_pool_processes_through_their_writer(make_app, monkeypatch):
    """The main process forks its pool: no writer thread of its own may hold a lock across a fork (a revoke it
    records is written at once); a pool process it forks goes back to writing behind its tasks."""
    from celery import signals
    app = make_app()
    monkeypatch.setattr(recorder, "_writer", None)
    monkeypatch.setattr(recorder, "_direct", False)
    signals.worker_init.send(sender=None)
    task_id = uuid.uuid4().hex
    recorder.on_publish(sender="tests.add", body=([1], {}, {}), headers={"id": task_id, "task": "tests.add"})
    assert recorder._writer is None  # no thread started in the main process
    assert run_row_or_none(app, task_id) is not None  # written before the call returned, no flush
    recorder._start_writer()  # what worker_process_init runs in a forked pool process
    assert recorder._direct is False and recorder._writer is not None
