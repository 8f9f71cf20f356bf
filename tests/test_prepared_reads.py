"""Prepared reads (panel/reads.py): the polled reads of one run and of the workers skip SQLAlchemy's execution path,
and must still give what it gives, on both databases: the same typed values, its errors, a pool left as it was."""
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from models import Run, Schedule, WorkerNode, db, utcnow
from panel import reads
from panel.cluster import workers
from panel.reads import PreparedRead
from panel.runlog import runs
from tests.helpers import add_runs, api_client

NOW = utcnow().replace(microsecond=123456)


def _schedule(app):
    with app.app_context():
        schedule = Schedule(name="nightly café", task="crawl_url", args=[], kwargs={}, interval_seconds=60)
        db.session.add(schedule)
        db.session.commit()
        schedule_id = schedule.id
        db.session.remove()
    return schedule_id


def _as_sqlalchemy_reads(app, celery_task_id):
    """The run's row, its schedule's name and its retries' ids as SQLAlchemy's own execution gives them."""
    with app.app_context(), db.engine.connect() as conn:
        row = conn.execute(select(*Run.__table__.columns, Schedule.name.label("schedule_name"))
                           .outerjoin(Schedule, Schedule.id == Run.scheduled_task_id)
                           .where(Run.celery_task_id == celery_task_id)).first()
        retries = conn.execute(select(Run.celery_task_id).where(Run.retry_of == celery_task_id)
                               .order_by(Run.queued_at, Run.id)).scalars().all()
    return dict(row._mapping), row.schedule_name, retries


def test_one_runs_prepared_read_gives_what_sqlalchemy_gives_on_both_databases(make_app, backend):
    app = make_app(backend)
    schedule_id = _schedule(app)
    [first] = add_runs(app, [{"scheduled_task_id": schedule_id, "args": [1, "zwei", {"drei": [3.5, None]}],
                              "kwargs": {"ключ": "värde", "n": 10**15}, "queued_at": NOW - timedelta(seconds=5),
                              "started_at": NOW - timedelta(seconds=4), "finished_at": NOW, "worker": "w@h",
                              "result": "'ok'", "retries": 2, "eta": NOW, "next_retry_at": NOW}])
    retries = add_runs(app, [{"retry_of": first, "queued_at": NOW + timedelta(seconds=s)} for s in (2, 1)])
    with app.app_context():
        run, schedule_name, retried_by = runs.detail(first)
        assert runs.detail("no-such-run") is None
    whole, expected_name, expected_retries = _as_sqlalchemy_reads(app, first)
    assert dict(run._mapping) == whole and schedule_name == expected_name == "nightly café"
    assert retried_by == expected_retries == retries[::-1]
    assert isinstance(run.queued_at, type(NOW)) and run.kwargs["n"] == 10**15 and run.args[2]["drei"] == [3.5, None]
    body = api_client(app, "viewer").get(f"/api/runs/{first}").get_json()
    assert body["queued_at"] == (NOW - timedelta(seconds=5)).isoformat() + "Z" and body["retried_by"] == retries[::-1]
    assert body["scheduled_task"] == {"id": schedule_id, "name": "nightly café"}


def test_the_workers_prepared_read_gives_what_sqlalchemy_gives_on_both_databases(make_app, backend):
    app = make_app(backend)
    with app.app_context():
        for name, beat in (("b@host", NOW), ("a@host", None)):
            db.session.add(WorkerNode(name=name, hostname="host", pid=7, online=True, last_heartbeat_at=beat,
                                      loadavg=[0.5, 0.25, 0.0], pool={"max-concurrency": 4, "processes": [1, 2]},
                                      queues=["celery"], registered=["t.a", "t.b"], info_at=NOW))
        db.session.commit()
        found = workers.rows()
        with db.engine.connect() as conn:
            expected = conn.execute(select(WorkerNode.__table__).order_by(WorkerNode.name)).all()
        db.session.remove()
    assert [dict(row._mapping) for row in found] == [dict(row._mapping) for row in expected]
    assert [row.name for row in found] == ["a@host", "b@host"] and found[1].pool["processes"] == [1, 2]


def test_a_prepared_read_that_fails_raises_sqlalchemys_error_and_leaves_the_pool_as_it_was(make_app, backend):
    app = make_app(backend)
    missing = PreparedRead(select(text("x")).select_from(text("no_such_table")))
    with app.app_context():
        pool = db.engine.pool
        with pytest.raises(SQLAlchemyError) as raised, reads.reading(db.engine) as conn:
            missing.rows(conn)
        assert raised.value.orig is not None and "no_such_table" in str(raised.value)
        if backend == "sqlite":
            assert isinstance(raised.value, OperationalError)  # the error handlers answer it with a 503
        assert pool.checkedout() == 0
        with reads.reading(db.engine) as conn:  # the connection went back usable: no transaction left open
            assert workers._ALL.rows(conn) == []
        assert pool.checkedout() == 0
        db.session.remove()
