"""Throughput of a burst of small tasks with run recording on, next to the same burst off."""
import json
import statistics
import subprocess
import sys
import time
import uuid

from bench.common import ROOT, print_rows, private_stack, row
from panel.broker import connection
from tests.helpers import wait_for

BURST = 1000
ROUNDS = 3
PAIRS = 3
DONE_TIMEOUT_S = 300
TARGET_RATIO = 0.95


def burst_rate(app, redis_url):
    """Tasks per second from the first send to the last completion."""
    celery = app.extensions["celery"]
    client = connection.redis_client(redis_url)
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
            from panel.runlog.recorder import count_runs
            wait_for(lambda: count_runs() == BURST * (ROUNDS + 1), 30, "every run to be recorded")
        return rates


def measure_apart(record):
    """One stack in its own process: the recorder's signals are process-wide, so off and on never share one."""
    out = subprocess.run([sys.executable, "-m", "bench.record_throughput", "--one", "on" if record else "off"],
                         cwd=str(ROOT), capture_output=True, text=True, timeout=DONE_TIMEOUT_S)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def results():
    # Off and on alternate (off-on, on-off, ...): a machine that speeds up or slows down during the
    # run then weighs on both sides alike instead of on whichever ran second.
    off, on = [], []
    for pair in range(PAIRS):
        for record in ((False, True) if pair % 2 == 0 else (True, False)):
            (on if record else off).extend(measure_apart(record))
    ratio = statistics.median(on) / statistics.median(off)
    print(f"burst of {BURST} tasks, worker prefork -c 2, SQLite run log, {PAIRS} stacks x {ROUNDS} rounds each side,"
          f" alternating")
    print(f"recording off: median {statistics.median(off):8.1f} tasks/s   rounds {[round(r) for r in off]}")
    print(f"recording on : median {statistics.median(on):8.1f} tasks/s   rounds {[round(r) for r in on]}")
    return [row("run recording, throughput on / off (prefork -c 2)", ratio, "x", f">= {TARGET_RATIO}",
                ratio >= TARGET_RATIO, f"off {statistics.median(off):,.0f} tasks/s, on {statistics.median(on):,.0f}")]


def main():
    print_rows(results())


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        print(json.dumps(measure(sys.argv[2] == "on")))
    else:
        main()
