"""Throughput of a burst of small tasks with run recording on, next to the same burst off.

Beside the rates, the CPU time each burst cost, per task and per process (the sender, the worker's main process, its
pool processes, Redis), read with psutil: on two shared cores the ratio follows the CPU that recording adds to all of
them, wherever it runs.
"""
import json
import statistics
import subprocess
import sys
import time
import uuid

import psutil

from bench.common import ROOT, print_rows, private_stack, row
from panel.broker import connection
from panel.host import processes
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


def stack_processes(app, rds):
    """The processes a burst runs in, by role: this sender, the worker's main process, its pool, Redis."""
    worker = processes.scan(app.config["INSTANCE_PATH"])["worker"][0]
    return {"sender": [psutil.Process()], "worker main": [psutil.Process(worker.pid)],
            "pool": [psutil.Process(pid) for pid in worker.children], "redis": [psutil.Process(rds.proc.pid)]}


def cpu_seconds(roles):
    """User and system CPU seconds so far of each role's processes (the sender's own threads included)."""
    return {role: sum(sum(p.cpu_times()[:2]) for p in procs) for role, procs in roles.items()}


def measure(record):
    """Rates of ROUNDS bursts and the CPU microseconds a task cost in each role over them."""
    with private_stack(RECORD_RUNS=record, WORKER_CONCURRENCY=2, WORKER_LOGLEVEL="warning") as (app, rds):
        results = app.extensions["supervisor"].start(("worker",))
        assert results["worker"].ok, results["worker"].log_tail
        burst_rate(app, rds.url)  # warm-up: pool children import, connections open
        roles = stack_processes(app, rds)
        before = cpu_seconds(roles)
        rates = [burst_rate(app, rds.url) for _ in range(ROUNDS)]
        if record:
            from panel.runlog.recorder import count_runs, flush
            flush()  # the sender's inserts are counted in its CPU, as the pool's writes are in theirs
            wait_for(lambda: count_runs() == BURST * (ROUNDS + 1), 30, "every run to be recorded")
        after = cpu_seconds(roles)
        return {"rates": rates, "cpu_us": {role: (after[role] - before[role]) / (BURST * ROUNDS) * 1e6
                                           for role in roles}}


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
    off, on, cpu = [], [], {False: [], True: []}
    for pair in range(PAIRS):
        for record in ((False, True) if pair % 2 == 0 else (True, False)):
            stack = measure_apart(record)
            (on if record else off).extend(stack["rates"])
            cpu[record].append(stack["cpu_us"])
    ratio = statistics.median(on) / statistics.median(off)
    print(f"burst of {BURST} tasks, worker prefork -c 2, SQLite run log, {PAIRS} stacks x {ROUNDS} rounds each side,"
          f" alternating")
    print(f"recording off: median {statistics.median(off):8.1f} tasks/s   rounds {[round(r) for r in off]}")
    print(f"recording on : median {statistics.median(on):8.1f} tasks/s   rounds {[round(r) for r in on]}")
    print_cpu(cpu)
    return [row("run recording, throughput on / off (prefork -c 2)", ratio, "x", f">= {TARGET_RATIO}",
                ratio >= TARGET_RATIO, f"off {statistics.median(off):,.0f} tasks/s, on {statistics.median(on):,.0f};"
                f" CPU a task {cpu_medians(cpu[False])['all']:,.0f} -> {cpu_medians(cpu[True])['all']:,.0f} us")]


def cpu_medians(stacks):
    """The median over the stacks of the CPU microseconds a task cost in each role, and in all of them together."""
    by_role = {role: statistics.median(stack[role] for stack in stacks) for role in stacks[0]}
    return dict(by_role, all=statistics.median(sum(stack.values()) for stack in stacks))


def print_cpu(cpu):
    """CPU microseconds a task per role and in all, recording off and on."""
    medians = {record: cpu_medians(stacks) for record, stacks in cpu.items()}
    print("CPU a task (us, median of stacks)    " + "".join(f"{role:>13}" for role in medians[False]))
    for record in (False, True):
        print(f"recording {'on ' if record else 'off'}                        "
              + "".join(f"{us:13.0f}" for us in medians[record].values()))


def main():
    print_rows(results())


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        print(json.dumps(measure(sys.argv[2] == "on")))
    else:
        main()
