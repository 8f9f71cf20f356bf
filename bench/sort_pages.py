"""The results sorted slowest first and oldest first over 1,000,000 runs in SQLite, through the real app.

Target: a deep page (after 500 pages) slowest first, p95 under 50 ms. Beside it in the same run: page 1 and the
same depth newest first (the default order), and the LIMIT/OFFSET baseline for the slowest deep page.
"""
import json
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import bulk_load, percentile, summary, timed  # noqa: E402
from models import utcnow  # noqa: E402
from panel.runlog import search  # noqa: E402
from tests.helpers import api_client, build_app  # noqa: E402

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
ROUNDS = 60
PAGES_IN = 500  # "deep": the page after 500 pages of 50
STATES = ["SUCCESS"] * 16 + ["FAILURE"] * 2 + ["REVOKED", "PENDING"]
SPAN = timedelta(days=100)


def seed(path, rows):
    """Bulk-load runs (indexes dropped first, built after); runtimes in whole ms, so many runs tie."""
    rng = random.Random(17)
    start, span_s = utcnow() - SPAN, SPAN.total_seconds()

    def rows_iter():
        for i in range(rows):
            at = start + timedelta(seconds=int(span_s * i / rows))  # whole seconds: queued_at ties too
            state = rng.choice(STATES)
            ended = state != "PENDING"
            runtime_s = round(rng.expovariate(1 / 3), 3) if ended else None
            yield (str(uuid.UUID(int=rng.getrandbits(128), version=4)), "crawl_url",
                   "completed" if state == "SUCCESS" else "failed" if ended else "pending", state,
                   json.dumps([f"https://site{rng.randrange(5000)}.example/page/{i}"]), "{}", at,
                   at if ended else None, at + timedelta(seconds=runtime_s) if ended else None, runtime_s, 0)

    bulk_load(path, "INSERT INTO task_logs (celery_task_id, task_name, status, state, args, kwargs, queued_at, "
                    "started_at, finished_at, runtime_s, retries) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows_iter())
    conn = sqlite3.connect(path)
    conn.execute("ANALYZE")
    conn.close()


ORDER_SQL = {"newest": ("", "queued_at DESC, id DESC"), "oldest": ("", "queued_at ASC, id ASC"),
             "slowest": ("WHERE runtime_s IS NOT NULL", "runtime_s DESC, id DESC")}


def cursor_after(path, sort, pages):
    """The cursor a person holds after paging `pages` pages of 50 in this order."""
    where, order = ORDER_SQL[sort]
    conn = sqlite3.connect(path)
    key, run_id = conn.execute(f"SELECT {'runtime_s' if sort == 'slowest' else 'queued_at'}, id FROM task_logs "
                               f"{where} ORDER BY {order} LIMIT 1 OFFSET ?", (pages * 50 - 1,)).fetchone()
    conn.close()
    return search.encode_cursor(key if sort == "slowest" else datetime.fromisoformat(key), run_id, sort)


def measure(app, db_path):
    client = api_client(app, "viewer")

    def get(url):
        resp = client.get(url)
        assert resp.status_code == 200, (url, resp.status_code, resp.get_data(as_text=True)[:200])
        return resp
    cases = []
    for sort in ("newest", "oldest", "slowest"):
        deep = cursor_after(db_path, sort, PAGES_IN)
        cases += [(f"{sort} first, page 1", f"/api/runs?sort={sort}"),
                  (f"{sort} first, after {PAGES_IN} pages", f"/api/runs?sort={sort}&cursor={deep}")]
    deepest = cursor_after(db_path, "slowest", int(ROWS * 0.8) // 50)
    cases.append(("slowest first, 80% in", f"/api/runs?sort=slowest&cursor={deepest}"))
    results = {}
    for label, url in cases:
        results[label] = timed(lambda url=url: get(url), ROUNDS)
        print(summary(label, results[label]))
    conn = sqlite3.connect(db_path)
    offset = timed(lambda: conn.execute("SELECT * FROM task_logs WHERE runtime_s IS NOT NULL ORDER BY runtime_s "
                                        "DESC, id DESC LIMIT 51 OFFSET ?", (int(ROWS * 0.8),)).fetchall(), 10)
    print(summary("baseline: LIMIT/OFFSET slowest 80% in (SQL only)", offset))
    return results, offset


def verdict(results, offset):
    deep = percentile(results[f"slowest first, after {PAGES_IN} pages"], 95)
    newest = percentile(results[f"newest first, after {PAGES_IN} pages"], 95)
    first = percentile(results["slowest first, page 1"], 95)
    print(f"\nslowest first after {PAGES_IN} pages p95 {deep:.2f} ms; newest first same depth {newest:.2f} ms "
          f"(ratio {deep / newest:.2f}); slowest page 1 {first:.2f} ms (deep/page-1 ratio {deep / first:.2f}); "
          f"80% in {percentile(results['slowest first, 80% in'], 95):.2f} ms vs LIMIT/OFFSET median "
          f"{sorted(offset)[len(offset) // 2]:.1f} ms")
    worst = max(percentile(v, 95) for v in results.values())
    print(f"worst p95 of every order and depth: {worst:.2f} ms (target < 50 ms: {'met' if worst < 50 else 'NOT met'})")


def main():
    with tempfile.TemporaryDirectory(prefix="panel-bench-sort-") as tmp:
        folder = Path(tmp)
        db_path = folder / "panel.db"
        app = build_app(folder / "instance", f"sqlite:///{db_path}", "redis://127.0.0.1:1/0", API_CHECK_RESPONSES=False)
        started = time.perf_counter()
        seed(db_path, ROWS)
        print(f"seeded {ROWS:,} runs in {time.perf_counter() - started:.1f} s "
              f"({db_path.stat().st_size / 2**20:.0f} MiB)")
        results, offset = measure(app, db_path)
    verdict(results, offset)


if __name__ == "__main__":
    main()
