"""Time from the cancel request to the execution confirmed stopped (grace included).

The wait for the pool process's exit watches a pidfd; the baseline, in the same run, is the wait without one
(the process table polled every 50 ms, as before 2026-12-05): a cancel confirmed at the next poll, not at the exit.
"""
import statistics
import time
from contextlib import contextmanager
from unittest import mock

from bench.common import print_rows, private_stack, row, summary
from models import Run, db
from panel.host import oscontrol
from tests.helpers import api_client

ROUNDS = 15
COOPERATIVE_TARGET_MS = 20
STUBBORN_TARGET_MS = 1000
RUNNING_TIMEOUT_S = 20


def wait_running(app, celery_task_id):
    deadline = time.monotonic() + RUNNING_TIMEOUT_S
    while time.monotonic() < deadline:
        with app.app_context():
            row = db.session.query(Run).filter_by(celery_task_id=celery_task_id).one_or_none()
            running = row is not None and row.status == "running"
            db.session.remove()
        if running:
            return
        time.sleep(0.02)
    raise RuntimeError("task never started")


def measure(app, client, task_name):
    celery = app.extensions["celery"]
    times = []
    for _ in range(ROUNDS):
        result = celery.send_task(task_name, args=[300])
        wait_running(app, result.id)
        started = time.perf_counter()
        body = client.post(f"/scheduler/cancel-run/{result.id}/").get_json()
        times.append((time.perf_counter() - started) * 1000)
        assert body["confirmed_stopped"] is True, body
    return times


@contextmanager
def polled_wait():
    """The baseline: no pidfd, so the exit is seen at the next 50 ms poll."""
    with mock.patch.object(oscontrol.os, "pidfd_open", side_effect=OSError(38, "no pidfd")):
        yield


def results():
    with private_stack(CELERY_IMPORTS="bench.bench_tasks,tests.sample_tasks", WORKER_LOGLEVEL="warning") as (app, _):
        assert app.extensions["supervisor"].start(("worker",))["worker"].ok
        client = api_client(app, "operator")
        cooperative = measure(app, client, "tests.sleep")
        with polled_wait():
            polled = measure(app, client, "tests.sleep")
        stubborn = measure(app, client, "tests.sleep_ignoring_term")
    print("cancel request -> execution confirmed stopped (real worker, prefork pool)")
    print(summary("task that ends on SIGTERM", cooperative))
    print(summary("the same, exit polled every 50 ms (before)", polled))
    print(summary("task that ignores SIGTERM (0.4 s grace, SIGKILL)", stubborn))
    fast, slow, forced = (statistics.median(v) for v in (cooperative, polled, stubborn))
    return [row("cancel, task that ends on SIGTERM (median)", fast, "ms", f"< {COOPERATIVE_TARGET_MS} ms",
                fast < COOPERATIVE_TARGET_MS, f"polled exit {slow:.1f} ms ({slow / fast:.1f}x)"),
            row("cancel, task that ignores SIGTERM (median)", forced, "ms", f"< {STUBBORN_TARGET_MS} ms",
                forced < STUBBORN_TARGET_MS, "0.4 s grace, then SIGKILL")]


def main():
    print_rows(results())


if __name__ == "__main__":
    main()
