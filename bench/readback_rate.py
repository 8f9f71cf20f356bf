"""Runs per second read back from each result store (`stores.ended_since`: listed, decoded, in the seam's shape).

10,000 ended runs (SUCCESS, a few FAILURE, with extended fields) are stored in each, encoded as each backend
encodes them: Redis through Celery's own backend (a private redis-server); Celery's SQLAlchemy table on SQLite
and on PostgreSQL (127.0.0.1:5432, database `test`, in a schema of the bench's own, dropped after); and
django-celery-results' table on SQLite (its columns and encoding: JSON result, the args as the worker's repr
in JSON text; written here with SQL, since the panel has no Django). The median of REPEATS full reads counts.
"""
import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from bench.common import private_stack
from panel.broker import results as stores  # not `results`: make bench calls a bench module's results()

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
REPEATS = 3
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
FAIL_EVERY = 50


def outcomes(now):
    """(task_id, status, result, args, kwargs, date_done) of RUNS ended runs."""
    for n in range(RUNS):
        failed = n % FAIL_EVERY == 0
        result = {"exc_type": "ValueError", "exc_message": [f"boom {n}"], "exc_module": "builtins"} if failed else n
        yield str(uuid.uuid4()), "FAILURE" if failed else "SUCCESS", result, [n, 1], {"label": "x"}, now


def fill_redis(celery):
    backend = celery.backend
    for task_id, status, result, args, kwargs, _ in outcomes(None):
        value = ValueError(result["exc_message"][0]) if status == "FAILURE" else result
        request = type("Request", (), {"id": task_id, "task": "bench.add", "args": args, "kwargs": kwargs,
                                       "hostname": "bench@host", "retries": 0, "delivery_info": {}})()
        backend.store_result(task_id, value, status, traceback="Traceback..." if status == "FAILURE" else None,
                             request=request)


def celery_table(schema=None):
    """celery_taskmeta as Celery's TaskExtended model declares it."""
    return sa.Table("celery_taskmeta", sa.MetaData(schema=schema),
                    sa.Column("id", sa.Integer, primary_key=True), sa.Column("task_id", sa.String(155), unique=True),
                    sa.Column("status", sa.String(50)), sa.Column("result", sa.LargeBinary),
                    sa.Column("date_done", sa.DateTime, index=True), sa.Column("traceback", sa.Text),
                    sa.Column("children", sa.LargeBinary), sa.Column("name", sa.String(155)),
                    sa.Column("args", sa.LargeBinary), sa.Column("kwargs", sa.LargeBinary),
                    sa.Column("worker", sa.String(155)), sa.Column("retries", sa.Integer),
                    sa.Column("queue", sa.String(155)), sa.Column("stamps", sa.LargeBinary))


def fill_celery_table(engine, schema, now):
    table = celery_table(schema)
    table.metadata.create_all(engine)
    naive = now.replace(tzinfo=None)
    rows = [{"task_id": t, "status": s, "result": json.dumps(r).encode(), "date_done": naive,
             "traceback": "Traceback..." if s == "FAILURE" else None, "name": "bench.add",
             "args": json.dumps(a).encode(), "kwargs": json.dumps(k).encode(), "worker": "bench@host",
             "retries": 0, "queue": "celery"} for t, s, r, a, k, _ in outcomes(now)]
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)


def fill_django_table(engine, now):
    """django_celery_results_taskresult with the columns its migrations make."""
    table = sa.Table("django_celery_results_taskresult", sa.MetaData(),
                     sa.Column("id", sa.Integer, primary_key=True), sa.Column("task_id", sa.String(255), unique=True),
                     sa.Column("status", sa.String(50)), sa.Column("content_type", sa.String(128)),
                     sa.Column("content_encoding", sa.String(64)), sa.Column("result", sa.Text),
                     sa.Column("date_done", sa.DateTime, index=True), sa.Column("traceback", sa.Text),
                     sa.Column("meta", sa.Text), sa.Column("task_args", sa.Text), sa.Column("task_kwargs", sa.Text),
                     sa.Column("task_name", sa.String(255)), sa.Column("worker", sa.String(100)),
                     sa.Column("date_created", sa.DateTime), sa.Column("date_started", sa.DateTime),
                     sa.Column("periodic_task_name", sa.String(255)))
    table.metadata.create_all(engine)
    naive = now.replace(tzinfo=None)
    rows = [{"task_id": t, "status": s, "content_type": "application/json", "content_encoding": "utf-8",
             "result": json.dumps(r), "date_done": naive, "traceback": None, "meta": '{"children": []}',
             "task_args": json.dumps(repr(tuple(a))), "task_kwargs": json.dumps(repr(k)), "task_name": "bench.add",
             "worker": "bench@host", "date_created": naive} for t, s, r, a, k, _ in outcomes(now)]
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)


def rate(label, read, since):
    seconds = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        found = read(since)
        seconds.append(time.perf_counter() - started)
        assert len(found) == RUNS, (label, len(found))
    median = statistics.median(seconds)
    print(f"{label:<34} {RUNS / median:10,.0f} runs/s   (median {median:.3f} s of {REPEATS} reads of {RUNS:,})")


def sql_benches(celery, folder, since, now):
    sqlite_url = f"sqlite:///{folder / 'celery_results.db'}"
    fill_celery_table(sa.create_engine(sqlite_url), None, now)
    rate("SQLAlchemy backend on SQLite", stores.open_store(celery, "db+" + sqlite_url).ended_since, since)
    schema = f"bench_readback_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        fill_celery_table(admin, schema, now)
        celery.conf.database_table_schemas = {"task": schema}
        rate("SQLAlchemy backend on PostgreSQL", stores.open_store(celery, "db+" + PG_URL).ended_since, since)
    finally:
        celery.conf.database_table_schemas = None
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    django_url = f"sqlite:///{folder / 'django.sqlite3'}"
    fill_django_table(sa.create_engine(django_url), now)
    rate("django-db (django-celery-results)", stores.open_store(celery, "django-db", django_url).ended_since, since)


def main():
    now = datetime.now(timezone.utc)
    since = now - timedelta(minutes=1)
    with private_stack() as (app, _redis), tempfile.TemporaryDirectory(prefix="panel-readback-") as tmp:
        celery = app.extensions["celery"]
        celery.conf.result_extended = True
        fill_redis(celery)
        rate("Redis", stores.store_of(celery).ended_since, since)
        sql_benches(celery, Path(tmp), since, now)


if __name__ == "__main__":
    main()
