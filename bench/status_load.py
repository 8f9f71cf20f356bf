"""GET /celery_status under gunicorn, 50 pollers while control requests interleave; 1 poller as baseline."""
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import percentile  # noqa: E402
from tests.gunicorn_stack import GunicornPanel, run_load  # noqa: E402
from tests.helpers import RedisServer  # noqa: E402

WORKERS = 3
SECONDS = 20
POLLERS = (1, 50)
PATH = "/celery_status"


def row(pollers, result):
    """One line of figures for one run."""
    values = result.latencies_ms[PATH]
    controls = Counter(code for _, code, _ in result.controls)
    return (f"{pollers:>7} {len(values) / result.seconds:>10.0f} {statistics.median(values):>9.2f} "
            f"{percentile(values, 95):>9.2f} {percentile(values, 99):>9.2f} {result.server_errors():>5} "
            f"{len(values):>7}   {dict(controls)}   most seen {dict(result.most)}")


def main():
    with tempfile.TemporaryDirectory(prefix="panel-bench-load-") as tmp:
        folder = Path(tmp)
        redis = RedisServer(folder)
        panel = None
        try:
            panel = GunicornPanel(folder, redis.url, workers=WORKERS, imports="bench.bench_tasks")
            started = panel.session("operator").post(panel.url("/scheduler/start-celery/"), timeout=150)
            assert started.status_code == 200, started.text
            runs = {n: run_load(panel, n, SECONDS, paths=(PATH,)) for n in POLLERS}
        finally:
            if panel is not None:
                panel.stop()
            redis.stop()

    print(f"GET {PATH} over HTTP under gunicorn ({WORKERS} workers x 4 threads, gthread), Bearer token, "
          f"{SECONDS} s per run; worker and Beat started, then start / restart Beat / stop cycling all along")
    print(f"{'pollers':>7} {'req/s':>10} {'median ms':>9} {'p95 ms':>9} {'p99 ms':>9} {'5xx':>5} {'n':>7}   "
          f"controls by status   process table")
    for n, result in runs.items():
        print(row(n, result))
    low, high = (percentile(runs[n].latencies_ms[PATH], 99) for n in POLLERS)
    errors = sum(r.server_errors() for r in runs.values())
    print(f"ratio p99 at {POLLERS[1]} / p99 at {POLLERS[0]}: {high / low:.1f}   "
          f"5xx: {errors} -> {'MET' if errors == 0 else 'NOT MET'} (must be 0)")


if __name__ == "__main__":
    main()
