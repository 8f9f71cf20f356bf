"""Time from the cancel request to the execution confirmed stopped (grace included)."""
import statistics
import time

from bench.common import private_stack, summary
from models import Run, db
from tests.helpers import api_client

ROUNDS = 7
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


def main():
    with private_stack(CELERY_IMPORTS="bench.bench_tasks,tests.sample_tasks", WORKER_LOGLEVEL="warning") as (app, _):
        assert app.extensions["supervisor"].start(("worker",))["worker"].ok
        client = api_client(app, "operator")
        cooperative = measure(app, client, "tests.sleep")
        stubborn = measure(app, client, "tests.sleep_ignoring_term")
    print("cancel request -> execution confirmed stopped (real worker, prefork pool)")
    print(summary("task that ends on SIGTERM", cooperative))
    print(summary("task that ignores SIGTERM (0.4 s grace, SIGKILL)", stubborn))
    worst = max(statistics.median(cooperative), statistics.median(stubborn))
    print(f"target: both medians under 1000 ms -> {'MET' if worst < 1000 else 'NOT MET'}")


if __name__ == "__main__":
    main()
