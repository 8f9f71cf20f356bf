"""A pool process's run changes commit behind its tasks: in order, in batches, none lost to a bad neighbour."""
import sqlite3
import threading
import time
import uuid
from types import SimpleNamespace

from models import Run, db, utcnow
from panel.broker import remote
from panel.runlog import recorder
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
