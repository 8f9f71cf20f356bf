"""Issue 3: throughput of a burst of small tasks with run recording on, next to the same burst off."""
import statistics
import time
import uuid

import redis

from bench.common import private_stack

BURST = 1000
ROUNDS = 3
DONE_TIMEOUT_S = 300


def burst_rate(app, redis_url):
    """Tasks per second from the first send to the last completion."""
    celery = app.extensions["celery"]
    client = redis.Redis.from_url(redis_url)
    key = f"bench:{uuid.uuid4().hex}"
    started = time.perf_counter()
    for _ in range(BURST):
        celery.send_task("bench.tick", args=[key])
    deadline = time.monotonic() + DONE_TIMEOUT_S
    while int(client.get(key) or 0) < BURST:
        if time.monotonic() > deadline:
            raise RuntimeError("burst did not finish")
        time.sleep(0.01)
    return BURST / (time.perf_counter() - started)


def measure(record):
    with private_stack(RECORD_RUNS=record, WORKER_CONCURRENCY=2, WORKER_LOGLEVEL="warning") as (app, rds):
        results = app.extensions["supervisor"].start(("worker",))
        assert results["worker"].ok, results["worker"].log_tail
        burst_rate(app, rds.url)  # warm-up: pool children import, connections open
        rates = [burst_rate(app, rds.url) for _ in range(ROUNDS)]
        if record:
            from panel.recorder import count_runs
            assert count_runs() == BURST * (ROUNDS + 1), "recording lost rows"
        return rates


def main():
    off = measure(False)
    on = measure(True)
    ratio = statistics.median(on) / statistics.median(off)
    print(f"burst of {BURST} tasks, worker prefork -c 2, SQLite run log, {ROUNDS} rounds each")
    print(f"recording off: median {statistics.median(off):8.1f} tasks/s   rounds {[round(r) for r in off]}")
    print(f"recording on : median {statistics.median(on):8.1f} tasks/s   rounds {[round(r) for r in on]}")
    print(f"ratio on/off: {ratio:.2f}   target >= 0.80 -> {'MET' if ratio >= 0.8 else 'NOT MET'}")


if __name__ == "__main__":
    main()
