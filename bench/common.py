"""Shared bench plumbing: a private Redis and a panel app on a temp instance, with real Celery."""
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import (  # noqa: E402
    RedisServer,  # noqa: E402
    build_app,
    stop_everything,
)


@contextmanager
def private_stack(**config):
    """A private redis-server and an app on a temp instance; everything stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="panel-bench-") as tmp:
        folder = Path(tmp)
        redis = RedisServer(folder)
        app = None
        try:
            config.setdefault("CELERY_IMPORTS", "bench.bench_tasks")
            config.setdefault("API_CHECK_RESPONSES", False)  # measured as served, not as the tests check it
            app = build_app(folder / "instance", f"sqlite:///{folder / 'panel.db'}", redis.url, **config)
            yield app, redis
        finally:
            if app is not None:
                stop_everything(app)
            redis.stop()


def timed(fn, rounds, warmup=5):
    """Milliseconds of each of `rounds` calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def percentile(values, pct):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def summary(label, values_ms):
    return (f"{label:<44} median {statistics.median(values_ms):8.3f} ms   "
            f"p95 {percentile(values_ms, 95):8.3f} ms   n={len(values_ms)}")


def bulk_load(path, insert_sql, rows):
    """Load runs into a SQLite panel database as any bulk load would: its indexes and triggers dropped first, built
    after (the search index rebuilt once, not row by row, the run tally counted once); returns the seconds the search
    index took."""
    import sqlite3

    from panel.database import SQLITE_SEARCH_TABLES
    from panel.runlog import tally
    conn = sqlite3.connect(path)
    made = conn.execute("SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') "
                        "AND tbl_name='task_logs' AND sql IS NOT NULL").fetchall()
    for kind, name, _ in made:
        conn.execute(f"DROP {kind.upper()} {name}")
    conn.execute("BEGIN")
    conn.executemany(insert_sql, rows)
    conn.execute("COMMIT")
    for _, _, sql in made:
        conn.execute(sql)
    began = time.perf_counter()
    for name in SQLITE_SEARCH_TABLES:
        conn.execute(f"INSERT INTO {name}({name}) VALUES ('rebuild')")
    conn.commit()
    for statement in tally.recount_sql("sqlite"):  # what the triggers would have kept, counted once
        conn.execute(statement)
    conn.commit()
    indexed_s = time.perf_counter() - began
    conn.close()
    return indexed_s


def row(measure, value, unit, target, met, baseline=None):
    """One line of `make bench`'s table: what was measured, its figure, the target and whether it holds."""
    return {"measure": measure, "value": float(value), "unit": unit, "target": target, "met": bool(met),
            "baseline": baseline}


def print_rows(rows, title=None):
    """The table `make bench` ends with, one line per measure, MET / NOT MET last."""
    if title:
        print(f"\n{title}")
    width = max([len(r["measure"]) for r in rows] + [7])
    print(f"{'measure':<{width}}  {'value':>12}  {'target':<22} {'baseline (same run)':<34} verdict")
    for r in rows:
        figure = f"{r['value']:,.2f} {r['unit']}"
        print(f"{r['measure']:<{width}}  {figure:>12}  {r['target']:<22} {r['baseline'] or '':<34} "
              f"{'MET' if r['met'] else 'NOT MET'}")
