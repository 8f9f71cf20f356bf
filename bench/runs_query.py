"""The results browser over 1,000,000 runs in SQLite (seeded here), through the real app.

Targets: first page, a page deep in the list, filtered by status and by name: p95 under 50 ms;
search by task id under 5 ms. Baseline in the same run: the same deep page by LIMIT/OFFSET.
"""
import json
import logging
import os
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import bulk_load, percentile, print_rows, row, summary, timed  # noqa: E402
from models import utcnow  # noqa: E402
from panel.runlog import search, stats  # noqa: E402
from tests.helpers import api_client, build_app  # noqa: E402

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
ROUNDS = 60
METRICS_TARGET_MS = 20
DEPTH = 0.9  # "deep": 90 % of the way to the oldest run
TASKS = [f"reports.task_{i:02d}" for i in range(19)] + ["crawl_url"]
STATES = ["SUCCESS"] * 16 + ["FAILURE"] * 2 + ["REVOKED", "RETRY"]
WORKERS = ["w1@alpha", "w2@alpha", "w1@beta", "w2@beta"]
SPAN = timedelta(days=100)  # the newest run is a minute old: the chart's hour is full


def seed(path, rows):
    """Bulk-load runs: indexes dropped first and built after, as any bulk load would."""
    rng = random.Random(6)
    span_s = SPAN.total_seconds()
    start = utcnow() - SPAN
    sample_ids = []

    def rows_iter():
        for i in range(rows):
            at = start + timedelta(seconds=span_s * i / rows)
            state = rng.choice(STATES)
            cid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            if i % 10_000 == 0:
                sample_ids.append(cid)
            runtime = timedelta(seconds=rng.expovariate(1 / 3))
            yield (cid, rng.choice(TASKS), "completed" if state == "SUCCESS" else "failed", state,
                   json.dumps([f"https://site{rng.randrange(5000)}.example/page/{i}"]),
                   json.dumps({"timeout": 10}), at, at, at + runtime, runtime.total_seconds(), rng.choice(WORKERS),
                   0, "Traceback ...\nValueError: boom" if state == "FAILURE" else None)

    indexed_s = bulk_load(path, "INSERT INTO task_logs (celery_task_id, task_name, status, state, args, kwargs, "
                          "queued_at, started_at, finished_at, runtime_s, worker, retries, traceback) "
                          "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows_iter())
    print(f"search index built over {rows:,} runs in {indexed_s:.1f} s")
    conn = sqlite3.connect(path)
    if not os.environ.get("BENCH_NO_ANALYZE"):  # a live database may never have been analysed: check both
        conn.execute("ANALYZE")
    conn.close()
    return sample_ids


def cursor_at(path, where, fraction, total):
    """The cursor a person would hold after paging `fraction` of the way into a filtered list."""
    conn = sqlite3.connect(path)
    at, run_id = conn.execute(f"SELECT queued_at, id FROM task_logs {where} ORDER BY queued_at DESC, id DESC "
                              f"LIMIT 1 OFFSET ?", (int(total * fraction),)).fetchone()
    conn.close()
    return search.encode_cursor(datetime.fromisoformat(at), run_id)


def count(path, where):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT count(*) FROM task_logs {where}").fetchone()[0]
    finally:
        conn.close()


def page_cases(get, db_path, sample_ids):
    """(label, request) for every page and filter the targets name."""
    failures, crawls = count(db_path, "WHERE state='FAILURE'"), count(db_path, "WHERE task_name='crawl_url'")
    deep = cursor_at(db_path, "", DEPTH, ROWS)
    deep_failed = cursor_at(db_path, "WHERE state='FAILURE'", DEPTH, failures)
    deep_crawl = cursor_at(db_path, "WHERE task_name='crawl_url'", DEPTH, crawls)
    ids = iter(sample_ids * (ROUNDS * 2))
    week_ago = (utcnow() - timedelta(days=30)).date().isoformat()
    week_end = (utcnow() - timedelta(days=23)).date().isoformat()
    return [
        ("first page (50 runs)", lambda: get("/api/runs")),
        (f"deep page ({DEPTH:.0%} in, keyset)", lambda: get(f"/api/runs?cursor={deep}")),
        ("status=FAILURE first page", lambda: get("/api/runs?status=FAILURE")),
        (f"status=FAILURE deep page ({DEPTH:.0%} in)", lambda: get(f"/api/runs?status=FAILURE&cursor={deep_failed}")),
        ("task=crawl_url first page", lambda: get("/api/runs?task=crawl_url")),
        (f"task=crawl_url deep page ({DEPTH:.0%} in)", lambda: get(f"/api/runs?task=crawl_url&cursor={deep_crawl}")),
        ("worker=w2@beta first page", lambda: get("/api/runs?worker=w2@beta")),
        ("one week, status=FAILURE", lambda: get(f"/api/runs?since={week_ago}&until={week_end}&status=FAILURE")),
        ("search by task id (q=<uuid>)", lambda: get(f"/api/runs?q={next(ids)}")),
        ("text in args, common (q=page/)", lambda: get("/api/runs?q=page/")),
    ]


def measure_pages(app, db_path, sample_ids):
    """Each case through the app with token auth; then a rare text search and the LIMIT/OFFSET baseline."""
    client = api_client(app, "viewer")

    def get(url):
        resp = client.get(url)
        assert resp.status_code == 200, (url, resp.status_code, resp.get_data(as_text=True)[:200])
        return resp
    results = {}
    for label, fn in page_cases(get, db_path, sample_ids):
        results[label] = timed(fn, ROUNDS)
        print(summary(label, results[label]))
    rare = iter([f"site{rng_site}.example/page/{n}" for rng_site in range(4990, 5000) for n in range(1, 40)])
    results["text in args, rare (q=site4999.example/page/1...)"] = timed(lambda: get(f"/api/runs?q={next(rare)}"),
                                                                        ROUNDS)
    print(summary("text in args, rare (q=site4999.example/page/1...)",
                  results["text in args, rare (q=site4999.example/page/1...)"]))
    conn = sqlite3.connect(db_path)
    offset = timed(lambda: conn.execute("SELECT * FROM task_logs ORDER BY queued_at DESC, id DESC LIMIT 51 OFFSET ?",
                                        (int(ROWS * DEPTH),)).fetchall(), 10)
    print(summary("baseline: LIMIT/OFFSET deep page (SQL only)", offset))
    return results, offset


def measure_figures(app):
    """The chart and the states count over the same log; then /metrics as Prometheus scrapes it (the first scrape of
    a process and the later ones): the rows of `make bench`'s table."""
    with app.app_context():
        print(summary("runs per minute, last hour (chart)", timed(lambda: stats.per_minute(), 20)))
        print(summary("runs by state (metrics)", timed(lambda: stats.by_state(), 5)))
    client = api_client(app, "viewer")
    logging.getLogger("panel.metrics").setLevel(logging.ERROR)  # no broker here: the queue gauge is skipped

    def scrape():
        assert client.get("/metrics").status_code == 200
    first = timed(scrape, 1, warmup=0)
    later = timed(scrape, 20)
    print(summary("/metrics, first scrape", first))
    print(summary("/metrics, later scrapes", later))
    size = f"{ROWS:,} runs (SQLite)"
    return [row(f"/metrics first scrape, {size}", first[0], "ms", f"< {METRICS_TARGET_MS} ms",
                first[0] < METRICS_TARGET_MS, "counted at scrape time: 3.0 s (2026-12-03)"),
            row(f"/metrics later scrapes p95, {size}", percentile(later, 95), "ms", f"p95 < {METRICS_TARGET_MS} ms",
                percentile(later, 95) < METRICS_TARGET_MS)]


def verdict(results, offset):
    """The rows of `make bench`'s table; the keyset page is compared with OFFSET, its baseline."""
    deep_p95 = percentile(results[f"deep page ({DEPTH:.0%} in, keyset)"], 95)
    offset_median = sorted(offset)[len(offset) // 2]
    print(f"\nkeyset deep page p95 {deep_p95:.2f} ms vs OFFSET median {offset_median:.1f} ms: "
          f"ratio {deep_p95 / offset_median:.3f}")
    worst = max(percentile(v, 95) for k, v in results.items() if "q=" not in k)
    by_id = percentile(results["search by task id (q=<uuid>)"], 95)
    rare = percentile(results["text in args, rare (q=site4999.example/page/1...)"], 95)
    common = percentile(results["text in args, common (q=page/)"], 95)
    size = f"{ROWS:,} runs (SQLite)"
    return [row(f"pages and filters, worst p95, {size}", worst, "ms", "p95 < 50 ms", worst < 50,
                f"deep page by OFFSET {offset_median:.1f} ms"),
            row(f"search by task id p95, {size}", by_id, "ms", "p95 < 5 ms", by_id < 5),
            row(f"text in args, rare term p95, {size}", rare, "ms", "p95 < 50 ms", rare < 50,
                "full scan 842 ms (2026-12-03)"),
            row(f"text in args, common term p95, {size}", common, "ms", "p95 < 50 ms", common < 50)]


def results():
    """Seed, measure and return the table's rows (the detail is printed on the way)."""
    with tempfile.TemporaryDirectory(prefix="panel-bench-runs-") as tmp:
        folder = Path(tmp)
        db_path = folder / "panel.db"
        app = build_app(folder / "instance", f"sqlite:///{db_path}", "redis://127.0.0.1:1/0", API_CHECK_RESPONSES=False)
        started = time.perf_counter()
        sample_ids = seed(db_path, ROWS)
        print(f"seeded {ROWS:,} runs in {time.perf_counter() - started:.1f} s "
              f"({db_path.stat().st_size / 2**20:.0f} MiB)")
        measured, offset = measure_pages(app, db_path, sample_ids)
        figures = measure_figures(app)
    return verdict(measured, offset) + figures


def main():
    print_rows(results())


if __name__ == "__main__":
    main()
