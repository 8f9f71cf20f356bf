"""The runs browser, search, chart, /metrics and the event recorder's writes over N runs (default 10,000,000) on
PostgreSQL, seeded by COPY.

Targets: pages, filters and sorts p95 < 10 ms; text search p95 < 100 ms; /metrics p95 < 20 ms; events written at
5,000/s or more (the SQLite ingest's target). Baseline in the same run: the deep
page by LIMIT/OFFSET. Usage: `.venv/bin/python -m bench.pg_scale [ROWS]`; the database is its own and dropped.
"""
import json
import logging
import random
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import percentile, print_rows, row, summary, timed  # noqa: E402
from models import db, utcnow  # noqa: E402
from panel.runlog import from_events, search, tally, trigrams  # noqa: E402
from tests.helpers import api_client, build_app, stop_everything  # noqa: E402

ROWS = int(sys.argv[1].replace(",", "")) if len(sys.argv) > 1 else 10_000_000
ROUNDS = 40
EVENT_RUNS = 15_000  # x3 events
EVENTS_TARGET = 5_000  # what the SQLite ingest bench asks (bench/event_ingest.py)
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TASKS = [f"reports.task_{i:02d}" for i in range(40)] + ["crawl_url"] * 10
STATES = ["SUCCESS"] * 16 + ["FAILURE"] * 2 + ["REVOKED", "RETRY"]
WORKERS = [f"w{i}@host{h}" for i in range(4) for h in "abcd"]
WORDS = ["alpha", "invoice", "Zürich", "東京", "crawl", "report", "naïve", "export"]
SPAN = timedelta(days=180)
COLUMNS = ("celery_task_id, task_name, status, state, args, kwargs, queued_at, started_at, finished_at, "
           "worker, retries, result, error, runtime_s")


def rows_iter(rows):
    """Runs one by one, oldest first, spread over SPAN; a few hundred bytes of text each."""
    rng, start, span_s = random.Random(28), utcnow() - SPAN, SPAN.total_seconds()
    for i in range(rows):
        at = start + timedelta(seconds=span_s * i / rows)
        state, runtime = rng.choice(STATES), rng.expovariate(1 / 3)
        args = json.dumps([f"https://site{rng.randrange(50000)}.example/page/{i}", rng.choice(WORDS)],
                          ensure_ascii=False)
        kwargs = json.dumps({"timeout": 10, "note": " ".join(rng.choices(WORDS, k=12))}, ensure_ascii=False)
        yield (str(uuid.UUID(int=rng.getrandbits(128), version=4)), rng.choice(TASKS),
               "completed" if state == "SUCCESS" else "failed", state, args, kwargs, at, at,
               at + timedelta(seconds=runtime), rng.choice(WORKERS), 0,
               "ok " * 20 if state == "SUCCESS" else None,
               "ValueError: boom in ünïcode" if state == "FAILURE" else None, runtime)


def seed(url, rows):
    """COPY the runs with the indexes and triggers off; build the indexes after, count the run tally, ANALYZE.
    Returns (seed_s, index_s)."""
    with psycopg.connect(url, autocommit=True) as conn:
        uniques = conn.execute("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                               "WHERE conrelid='task_logs'::regclass AND contype='u'").fetchall()
        for name, _ in uniques:
            conn.execute(f'ALTER TABLE task_logs DROP CONSTRAINT "{name}"')
        indexes = conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename='task_logs' "
                               "AND indexname NOT LIKE '%pkey'").fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.execute("ALTER TABLE task_logs DISABLE TRIGGER USER")  # the run tally's
        began = time.perf_counter()
        with conn.cursor().copy(f"COPY task_logs ({COLUMNS}) FROM STDIN") as copy:
            for r in rows_iter(rows):
                copy.write_row(r)
        seed_s = time.perf_counter() - began
        began = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '256MB'")
        for _, ddl in indexes:
            conn.execute(ddl)
        for name, ddl in uniques:
            conn.execute(f'ALTER TABLE task_logs ADD CONSTRAINT "{name}" {ddl}')
        conn.execute("ALTER TABLE task_logs ENABLE TRIGGER USER")
        with conn.transaction():  # what the triggers would have kept, counted once
            for statement in tally.recount_sql("postgresql"):
                conn.execute(statement)
        conn.execute("ANALYZE task_logs")
        return seed_s, time.perf_counter() - began


def deep_cursor(url, where="", sort="newest"):
    """The keyset cursor a person holds 90 % of the way through a filtered list in one of its orders."""
    key, way = ("runtime_s", "DESC") if sort == "slowest" else ("queued_at", "ASC" if sort == "oldest" else "DESC")
    if sort == "slowest":  # the slowest-first list holds only runs with a runtime (panel/runlog/search.py)
        where = f"{where} AND runtime_s IS NOT NULL" if where else "WHERE runtime_s IS NOT NULL"
    with psycopg.connect(url) as conn:
        total = conn.execute(f"SELECT count(*) FROM task_logs {where}").fetchone()[0]
        at, run_id = conn.execute(f"SELECT {key}, id FROM task_logs {where} ORDER BY {key} {way}, id {way} "
                                  "LIMIT 1 OFFSET %s", (int(total * 0.9),)).fetchone()
    return search.encode_cursor(at, run_id, sort)


def cases(get, url):
    """(label, kind, call) for every page, filter, sort, search, chart and /metrics."""
    day = (utcnow() - timedelta(days=60)).date()
    deep, deep_failed = deep_cursor(url), deep_cursor(url, "WHERE state='FAILURE'")
    deep_oldest, deep_slowest = deep_cursor(url, sort="oldest"), deep_cursor(url, sort="slowest")
    return [("first page", "page", lambda: get("/api/runs")),
           ("deep page 90 % in (keyset)", "page", lambda: get(f"/api/runs?cursor={deep}")),
           ("status=FAILURE", "page", lambda: get("/api/runs?status=FAILURE")),
           ("status=FAILURE deep page 90 % in", "page", lambda: get(f"/api/runs?status=FAILURE&cursor={deep_failed}")),
           ("task=crawl_url", "page", lambda: get("/api/runs?task=crawl_url")),
           ("task=reports.task_07", "page", lambda: get("/api/runs?task=reports.task_07")),
           ("worker=w3@hostd", "page", lambda: get("/api/runs?worker=w3@hostd")),
           ("one week", "page", lambda: get(f"/api/runs?since={day}&until={day + timedelta(days=7)}")),
           ("week+FAILURE+task", "page",
            lambda: get(f"/api/runs?since={day}&until={day + timedelta(days=7)}&status=FAILURE&task=crawl_url")),
           ("oldest first", "page", lambda: get("/api/runs?sort=oldest")),
           ("oldest first, 90 % in", "page", lambda: get(f"/api/runs?sort=oldest&cursor={deep_oldest}")),
           ("slowest first", "page", lambda: get("/api/runs?sort=slowest")),
           ("slowest first, 90 % in", "page", lambda: get(f"/api/runs?sort=slowest&cursor={deep_slowest}")),
           ("slowest first, status=FAILURE", "page", lambda: get("/api/runs?sort=slowest&status=FAILURE")),
           ("slowest first, task=reports.task_07", "page", lambda: get("/api/runs?sort=slowest&task=reports.task_07")),
           ("search rare (site49999.example)", "search", lambda: get("/api/runs?q=site49999.example")),
           ("search common (invoice)", "search", lambda: get("/api/runs?q=invoice")),
           ("search common + status=FAILURE", "search", lambda: get("/api/runs?q=invoice&status=FAILURE")),
           ("search non-ASCII (Zürich)", "search", lambda: get("/api/runs?q=Zürich")),
           ("chart /api/runs/per-minute", "page", lambda: get("/api/runs/per-minute")),
           ("/metrics", "metrics", lambda: get("/metrics"))]


def measure(app, url):
    """Each case through the app with an admin's token; failures are reported, not hidden."""
    client = api_client(app, "admin")

    def get(path):
        resp = client.get(path)
        if resp.status_code != 200:
            raise RuntimeError(f"{path}: {resp.status_code} {resp.get_data(as_text=True)[:200]}")
        return resp
    got = {}
    for label, kind, fn in cases(get, url):
        try:
            got[label] = (kind, timed(fn, ROUNDS if kind != "search" else 15, warmup=2))
            print(summary(label, got[label][1]))
        except RuntimeError as exc:
            print(f"{label}: FAILED {exc}")
            got[label] = (kind, None)  # a NOT MET row of its own in the table
    return got


def event_rate(app, runs=EVENT_RUNS):
    """The event recorder's writes at this size: each run's received, started and succeeded events in three
    batches of their own (an insert, then two updates of rows already there, as when a task outlasts a batch),
    through the writer the panel uses (from_events.EventWriter). Returns events per second."""
    with app.app_context():
        writer = from_events.EventWriter(db.engine)
    began, chunk, now = time.perf_counter(), from_events.Batcher.BATCH, time.time()
    for first in range(0, runs, chunk):
        ids = [f"evbench-{n}" for n in range(first, min(first + chunk, runs))]
        for kind, extra in (("task-received", {"name": "bench.load", "args": "[1, 2]", "kwargs": "{}", "retries": 0}),
                            ("task-started", {}), ("task-succeeded", {"result": "3", "runtime": 0.001})):
            writer.write([dict(extra, type=kind, uuid=tid, hostname="w1@bench", timestamp=now) for tid in ids])
    rate = runs * 3 / (time.perf_counter() - began)
    print(f"event recorder's writes: {runs:,} runs x 3 events at {rate:,.0f} events/s")
    return rate


def whole_term(app):
    """Baseline in the same run: the rare search with the whole term sent to the index (before trigrams.py)."""
    client = api_client(app, "admin")
    cut = trigrams.narrowest
    trigrams.narrowest = lambda q, sample: None
    try:
        values = timed(lambda: client.get("/api/runs?q=site49999.example"), 15, warmup=2)
    finally:
        trigrams.narrowest = cut
    print(summary("search rare, whole term to the index (baseline)", values))
    return percentile(values, 95)


def verdict(got, seed_s, index_s, offset_ms, whole_ms=None, events_s=None):
    """One row per measure, with its target."""
    size = f"{ROWS:,} runs (PostgreSQL)"
    out = [row(f"seed by COPY, {size}", seed_s, "s", "minutes", seed_s < 900, None),
           row(f"indexes, tally + ANALYZE, {size}", index_s, "s", "minutes", index_s < 900, None)]
    if events_s is not None:
        out.append(row(f"event recorder's writes, {size}", events_s, "events/s", f">= {EVENTS_TARGET:,} events/s",
                       events_s >= EVENTS_TARGET, "SQLite ingest target 5,000 events/s"))
    for label, (kind, values) in got.items():
        limit = 100 if kind == "search" else (20 if kind == "metrics" else 10)
        p95 = percentile(values, 95) if values else 0.0
        out.append(row(f"{label} p95, {size}" + ("" if values else " (request failed)"), p95, "ms",
                       f"p95 < {limit} ms", bool(values) and p95 < limit,
                       f"OFFSET deep page {offset_ms:.0f} ms" if label.startswith("deep page") else
                       (f"whole term to the index {whole_ms:.0f} ms" if whole_ms and label.startswith("search rare")
                        else None)))
    return out


def results():
    """Create a database of its own, seed, measure, drop it whatever happens."""
    logging.getLogger("panel.metrics").setLevel(logging.ERROR)  # no broker here: the queue gauge is skipped
    name = f"panel_bench_{uuid.uuid4().hex[:10]}"
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with tempfile.TemporaryDirectory(prefix="panel-bench-pg-") as tmp:
            app = build_app(Path(tmp) / "instance", url.replace("postgresql:", "postgresql+psycopg:"),
                            "redis://127.0.0.1:1/0", API_CHECK_RESPONSES=False)
            try:
                return _measured(app, url)
            finally:
                stop_everything(app)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _measured(app, url):
    """Seed the app's database, measure every case and the OFFSET baseline, and return the rows."""
    seed_s, index_s = seed(url, ROWS)
    print(f"seeded {ROWS:,} runs by COPY in {seed_s:.1f} s; indexes + ANALYZE in {index_s:.1f} s")
    with app.app_context():  # what a running panel has a moment after its first search (panel/runlog/trigrams.py)
        began = time.perf_counter()
        sample = trigrams.take(db.engine)
    print(f"trigram sample of {sample.rows:,} runs taken in {(time.perf_counter() - began) * 1000:.0f} ms")
    got = measure(app, url)
    with psycopg.connect(url) as conn:
        offset_ms = min(timed(lambda: conn.execute(
            "SELECT * FROM task_logs ORDER BY queued_at DESC, id DESC LIMIT 51 OFFSET %s",
            (int(ROWS * 0.9),)).fetchall(), 3, warmup=0))
    print(f"baseline: LIMIT/OFFSET deep page (SQL only) {offset_ms:.1f} ms")
    return verdict(got, seed_s, index_s, offset_ms, whole_term(app), event_rate(app))


def main():
    print_rows(results())


if __name__ == "__main__":
    main()
