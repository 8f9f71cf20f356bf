"""The run tally: runs by state and the duration histogram kept by the database's triggers on every write of a run,
folded without losing a change beside concurrent writers, and counted from the runs already there by the migration."""
import random
import threading
import uuid
from datetime import timedelta

import pytest
from flask_migrate import upgrade
from sqlalchemy import delete, func, select, update

from models import Run, RunTally, db
from panel.runlog import tally
from tests.helpers import NOW, add_runs, wait_for


def counted(app):
    """What the log holds, counted the slow way: runs by state, and the runtimes known."""
    with app.app_context():
        states = dict(db.session.execute(select(Run.state, func.count()).group_by(Run.state)).all())
        runtimes = list(db.session.scalars(select(Run.runtime_s).where(Run.runtime_s.is_not(None))))
        db.session.remove()
    return states, runtimes


def histogram_of(runtimes):
    """Cumulative buckets as Prometheus has them, from a list of observed runtimes."""
    bounds = tally.DURATION_BUCKETS_S + (float("inf"),)
    return [(bound, sum(1 for r in runtimes if max(r, 0.0) <= bound)) for bound in bounds]


def figures(app):
    with app.app_context():
        return tally.read()


def rows(app):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(RunTally))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_tally_follows_every_insert_state_change_runtime_and_delete(make_app, backend):
    app = make_app(backend)
    ended = add_runs(app, [{"started_at": NOW - timedelta(seconds=s), "finished_at": NOW} for s in (0.02, 0.3, 7)]
                     + [{"state": "FAILURE", "started_at": NOW - timedelta(seconds=4000), "finished_at": NOW}])
    running = add_runs(app, [{"state": "STARTED", "status": "running", "started_at": NOW} for _ in range(3)])
    add_runs(app, [{"state": "PENDING", "status": "pending"} for _ in range(2)])
    observed = [0.02, 0.3, 7, 4000]
    assert figures(app).by_state == {"SUCCESS": 3, "FAILURE": 1, "STARTED": 3, "PENDING": 2}
    with app.app_context():  # one run ends by a bulk statement, as the writers end them; one by the ORM
        db.session.execute(update(Run).where(Run.celery_task_id == running[0]).values(
            state="SUCCESS", finished_at=NOW + timedelta(seconds=2), runtime_s=2.0))
        row = db.session.scalar(select(Run).where(Run.celery_task_id == running[1]))
        row.state, row.runtime_s = "REVOKED", 0.7
        db.session.commit()
        db.session.execute(update(Run).where(Run.celery_task_id == running[0]).values(worker="w1"))  # no change
        db.session.execute(update(Run).where(Run.celery_task_id == ended[0]).values(runtime_s=99.0))  # corrected
        db.session.commit()
    observed += [2.0, 0.7]
    got = figures(app)
    assert got.by_state == counted(app)[0] == {"SUCCESS": 4, "FAILURE": 1, "STARTED": 1, "PENDING": 2, "REVOKED": 1}
    assert got.buckets() == histogram_of(observed), "a runtime is observed once, when it first becomes known"
    assert got.count == 6 and got.total_s == pytest.approx(sum(observed))
    with app.app_context():
        db.session.execute(delete(Run).where(Run.celery_task_id.in_(ended[:2] + running[2:])))
        db.session.commit()
    got = figures(app)
    assert got.by_state == counted(app)[0] == {"SUCCESS": 2, "FAILURE": 1, "PENDING": 2, "REVOKED": 1}
    assert got.count == 6, "deleting a run takes nothing from the histogram (a Prometheus counter)"


def test_a_truncated_log_counts_no_runs_on_postgresql(make_app):
    app = make_app("postgresql")
    add_runs(app, [{"started_at": NOW, "finished_at": NOW + timedelta(seconds=1)} for _ in range(3)])
    with app.app_context():
        db.session.execute(db.text("TRUNCATE task_logs"))
        db.session.commit()
    got = figures(app)
    assert got.by_state == {} and got.count == 3


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_fold_keeps_every_figure_and_leaves_one_row_each(make_app, backend, monkeypatch):
    monkeypatch.setattr(tally, "FOLD_AT", 10)
    app = make_app(backend)
    rng = random.Random(5)
    ids = [cid for _ in range(40) for cid in add_runs(app, [{  # one statement each (PostgreSQL sums per statement)
        "state": rng.choice(["SUCCESS", "FAILURE", "PENDING"]), "started_at": NOW,
        "finished_at": NOW + timedelta(seconds=rng.expovariate(0.5))}])]
    with app.app_context():
        db.session.execute(delete(Run).where(Run.celery_task_id.in_(ids[:20])))
        db.session.commit()
    before = figures(app)
    assert rows(app) >= 40
    with app.app_context():
        assert tally.fold() is True
    after = figures(app)
    assert (after.by_state, after.buckets()) == (before.by_state, before.buckets())
    assert after.total_s == pytest.approx(before.total_s)
    assert rows(app) == len(after.by_state) + len(after.counts), "one row per figure"
    with app.app_context():
        assert tally.fold() is False, "nothing to fold: no write"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_folds_beside_concurrent_writers_lose_no_change(make_app, backend, monkeypatch):
    monkeypatch.setattr(tally, "FOLD_AT", 1)
    app = make_app(backend)
    with app.app_context():
        engine = db.engine
    errors, done = [], threading.Event()

    def writer(seed):
        rng = random.Random(seed)
        try:
            for _ in range(40):
                cids = [str(uuid.uuid4()) for _ in range(5)]
                with engine.begin() as conn:
                    conn.execute(Run.__table__.insert(), [
                        {"celery_task_id": c, "task_name": "t", "state": "PENDING", "status": "pending",
                         "queued_at": NOW, "retries": 0} for c in cids])
                with engine.begin() as conn:
                    conn.execute(update(Run).where(Run.celery_task_id.in_(cids[:3])).values(
                        state=rng.choice(["SUCCESS", "FAILURE"]), started_at=NOW, runtime_s=rng.random() * 3))
                with engine.begin() as conn:
                    conn.execute(delete(Run).where(Run.celery_task_id == cids[4]))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    def folder():
        while not done.is_set():
            try:
                tally.fold(engine)
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
                return

    writers = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    folders = [threading.Thread(target=folder) for _ in range(2)]
    for t in writers + folders:
        t.start()
    for t in writers:
        t.join(120)
    done.set()
    for t in folders:
        t.join(30)
    assert not errors and not any(t.is_alive() for t in writers + folders)
    states, runtimes = counted(app)
    got = figures(app)
    assert got.by_state == states and sum(states.values()) == 3 * 40 * 4
    assert got.buckets() == histogram_of(runtimes) and got.total_s == pytest.approx(sum(runtimes))


def test_the_background_folds_the_changes(make_app, monkeypatch):
    monkeypatch.setattr(tally, "FOLD_AT", 10)
    monkeypatch.setattr(tally, "FOLD_S", 0.05)
    app = make_app()
    add_runs(app, [{"started_at": NOW, "finished_at": NOW + timedelta(seconds=1)} for _ in range(30)])
    assert rows(app) == 60
    stop = tally.start(app)
    try:
        wait_for(lambda: rows(app) == 2, 10, "the fold")
    finally:
        stop.set()
    assert figures(app).by_state == {"SUCCESS": 30} and figures(app).count == 30


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_migration_counts_the_runs_already_there(make_app, backend):
    app = make_app(backend)
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        upgrade(revision="a1c3e5f7b9d2")  # a database from before the tally, holding runs
        db.session.remove()
    add_runs(app, [{"state": "FAILURE", "started_at": NOW, "finished_at": NOW + timedelta(seconds=s)}
                   for s in (0.01, 12)] + [{"state": "PENDING"}])
    try:
        with app.app_context():
            upgrade()
    finally:
        with app.app_context(), db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    got = figures(app)
    assert got.by_state == {"FAILURE": 2, "PENDING": 1}
    assert got.buckets() == histogram_of([0.01, 12])
    add_runs(app, [{"state": "PENDING"}])  # and the triggers keep it from now on
    assert figures(app).by_state == {"FAILURE": 2, "PENDING": 2}
