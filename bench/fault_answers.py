"""How fast the panel answers when something outside is broken (the timings the fault tests used to assert).

Targets from the README: a command-line tool with an unreachable broker reports it within seconds (exit 3);
/celery_status answers from the process table while SQLite is locked, as fast as when it is not; an alert
to a webhook that never answers gives up at ALERT_WEBHOOK_TIMEOUT_S; controls with a dead broker are 503 at once.
"""
import statistics
import subprocess
import sys

from bench.common import ROOT, private_stack, summary, timed
from tests.alert_receivers import Receiver
from tests.helpers import SqliteLock, api_client, free_port

ROUNDS = 20
TOOL_ROUNDS = 3
WEBHOOK_TIMEOUT_S = 2.0


def tool_with_dead_broker(app):
    env = dict(app.extensions["supervisor"].child_env(), CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")
    argv = [sys.executable, str(ROOT / "scripts" / "stop_retries.py"), "--all-retries"]

    def once():
        assert subprocess.run(argv, cwd=str(ROOT), env=env, capture_output=True, timeout=60).returncode == 3
    return timed(once, TOOL_ROUNDS, warmup=0)


def status_while_locked(app):
    viewer = api_client(app, "viewer")
    free = timed(lambda: viewer.get("/celery_status"), ROUNDS)
    with SqliteLock(app, 60):
        busy = timed(lambda: viewer.get("/celery_status"), ROUNDS, warmup=0)
    return free, busy


def alert_to_a_hung_webhook(app):
    from panel.health import alerts
    with app.app_context():
        return timed(lambda: alerts.process_fatal(app.config, "worker", "bench", 1), 3, warmup=0)


def controls_with_a_dead_broker(app):
    operator = api_client(app, "operator")
    return timed(lambda: operator.post("/scheduler/start-celery/"), ROUNDS)


def main():
    receiver = Receiver()
    try:
        with private_stack(ALERT_WEBHOOK_URL=receiver.url("/hang"), ALERT_WEBHOOK_TIMEOUT_S=WEBHOOK_TIMEOUT_S,
                           ALERT_MIN_INTERVAL_S=0) as (app, _redis):
            tool = tool_with_dead_broker(app)
            free, busy = status_while_locked(app)
            hung = alert_to_a_hung_webhook(app)
        with private_stack(CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0") as (dead, _redis):
            refused = controls_with_a_dead_broker(dead)
    finally:
        receiver.stop()
    print(summary("stop_retries.py --all-retries, broker down", tool))
    print(summary("GET /celery_status, database free", free))
    print(summary("GET /celery_status, SQLite locked", busy))
    print(summary(f"alert to a webhook that never answers ({WEBHOOK_TIMEOUT_S:g} s)", hung))
    print(summary("POST /scheduler/start-celery/, broker down (503)", refused))
    tool_s = statistics.median(tool) / 1000
    ratio = statistics.median(busy) / statistics.median(free)
    print(f"tool reports the dead broker in {tool_s:.1f} s (target: within seconds, < 5 s: "
          f"{'MET' if tool_s < 5 else 'NOT MET'})")
    print(f"status while locked / free = {ratio:.2f}x (target: about the same, < 3x: "
          f"{'MET' if ratio < 3 else 'NOT MET'})")
    gave_up = statistics.median(hung) / 1000
    print(f"the alert gave up after {gave_up:.1f} s (target: the {WEBHOOK_TIMEOUT_S:g} s timeout, < "
          f"{WEBHOOK_TIMEOUT_S + 3:g} s: {'MET' if gave_up < WEBHOOK_TIMEOUT_S + 3 else 'NOT MET'})")


if __name__ == "__main__":
    main()
