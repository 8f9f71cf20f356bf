"""GET /celery_status under gunicorn, 50 pollers while control requests interleave; 1 poller as baseline."""
import os
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import percentile, print_rows, row as table_row  # noqa: E402
from tests.gunicorn_stack import GunicornPanel, run_load  # noqa: E402
from tests.helpers import RedisServer  # noqa: E402

SECONDS = float(os.environ.get("BENCH_LOAD_S", "20"))  # per run; a short one for a first look
POLLERS = (1, 50)
PATH = "/celery_status"
P99_TARGET_MS = 50
# Before the shared status, the token cache and the leaner pipeline (8d9cd81, 3 workers), with ten poller processes
# on http.client on 2026-12-05; the 316 ms / 459 req/s were one process of requests. Since 2026-12-06 the
# pollers speak HTTP on raw sockets (tests/pollers.py): ~50 us of CPU a request instead of ~160.
BEFORE = "p99 128-202 ms, 920 req/s (8d9cd81, http.client pollers)"
BEFORE_RPS = 920


def row(pollers, result):
    """One line of figures for one run."""
    values = result.latencies_ms[PATH]
    controls = Counter(code for _, code, _ in result.controls)
    return (f"{pollers:>7} {len(values) / result.seconds:>10.0f} {statistics.median(values):>9.2f} "
            f"{percentile(values, 95):>9.2f} {percentile(values, 99):>9.2f} {result.server_errors():>5} "
            f"{len(values):>7}   {dict(controls)}   most seen {dict(result.most)}")


def measure():
    """{pollers: LoadResult} for each number of pollers, on one gunicorn panel with worker and Beat started."""
    with tempfile.TemporaryDirectory(prefix="panel-bench-load-") as tmp:
        folder = Path(tmp)
        redis = RedisServer(folder)
        panel = None
        try:
            panel = GunicornPanel(folder, redis.url, imports="bench.bench_tasks")  # PANEL_WORKERS as shipped
            workers = len(panel.worker_pids())
            started = panel.session("operator").post(panel.url("/scheduler/start-celery/"), timeout=150)
            assert started.status_code == 200, started.text
            runs = {n: run_load(panel, n, SECONDS, paths=(PATH,)) for n in POLLERS}
            quiet = run_load(panel, POLLERS[-1], SECONDS, paths=(PATH,), controls=False)
        finally:
            if panel is not None:
                panel.stop()
            redis.stop()
    return workers, runs, quiet


def detail(workers, runs, quiet):
    """The figures of each run, printed on the way to the table."""
    print(f"GET {PATH} over HTTP under gunicorn ({workers} workers x 4 threads, gthread, as shipped), Bearer token, "
          f"{SECONDS} s per run; worker and Beat started, then start / restart Beat / stop cycling all along")
    print(f"{'pollers':>7} {'req/s':>10} {'median ms':>9} {'p95 ms':>9} {'p99 ms':>9} {'5xx':>5} {'n':>7}   "
          f"controls by status   process table")
    for n, result in runs.items():
        print(row(n, result))
    print(row(POLLERS[-1], quiet) + "   (no controls: the pollers alone)")
    low, high = (percentile(runs[n].latencies_ms[PATH], 99) for n in POLLERS)
    errors = sum(r.server_errors() for r in runs.values())
    print(f"ratio p99 at {POLLERS[1]} / p99 at {POLLERS[0]}: {high / low:.1f}   "
          f"5xx: {errors} -> {'MET' if errors == 0 else 'NOT MET'} (must be 0)")


def results():
    """Measure and return `make bench`'s rows: p99, throughput and 5xx at 50 pollers (1 poller beside it)."""
    workers, runs, quiet = measure()
    detail(workers, runs, quiet)
    one, many = runs[POLLERS[0]], runs[POLLERS[-1]]
    p99 = percentile(many.latencies_ms[PATH], 99)
    rate = len(many.latencies_ms[PATH]) / many.seconds
    errors = sum(r.server_errors() for r in [*runs.values(), quiet])
    quiet_p99 = percentile(quiet.latencies_ms[PATH], 99)
    alone = f"1 poller p99 {percentile(one.latencies_ms[PATH], 99):.1f} ms; before {BEFORE}"
    label = f"GET {PATH} {{}}, {POLLERS[-1]} pollers"
    return [table_row(label.format("p99"), p99, "ms", f"p99 <= {P99_TARGET_MS} ms", p99 <= P99_TARGET_MS, alone),
            table_row(label.format("p99") + ", no controls", quiet_p99, "ms", f"p99 <= {P99_TARGET_MS} ms",
                      quiet_p99 <= P99_TARGET_MS, "the pollers alone, no start / restart / stop beside them"),
            table_row(label.format("throughput"), rate, "req/s", f"> {BEFORE_RPS} req/s (before)", rate > BEFORE_RPS),
            table_row(label.format("5xx (and no answer)"), errors, "count", "0", errors == 0,
                      "controls cycling all along")]


def main():
    print_rows(results())


if __name__ == "__main__":
    main()
