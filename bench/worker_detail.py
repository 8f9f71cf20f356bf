"""Worker detail through the panel next to `celery inspect active` with Celery's default timeout."""
import logging
import statistics
import subprocess
import threading
import time

import requests
from werkzeug.serving import make_server

from bench.common import private_stack, summary, timed
from panel.cluster import monitor
from panel.config import ROOT
from tests.helpers import api_client

ROUNDS = 50
WARMUP = 5
BROADCAST_ROUNDS = 5   # each one waits out Celery's 1 s default timeout
CLI_ROUNDS = 3
TARGET_MS = 20
ONLINE_WAIT_S = 30


def wait_listed(client, name):
    deadline = time.monotonic() + ONLINE_WAIT_S
    while time.monotonic() < deadline:
        if any(w["name"] == name and w["online"] for w in client.get("/api/workers").get_json()["workers"]):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{name} never showed up online")


def measure(app, client, name):
    """(panel WSGI, panel over HTTP, in-process broadcast inspect, CLI) timings in ms."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {app.extensions['test_tokens']['viewer']}"
    url = f"http://127.0.0.1:{server.server_port}/api/workers/{name}"
    try:
        body = client.get(f"/api/workers/{name}").get_json()
        assert body["no_reply"] == [], body
        in_app = timed(lambda: client.get(f"/api/workers/{name}"), ROUNDS, WARMUP)
        over_http = timed(lambda: http.get(url, timeout=10), ROUNDS, WARMUP)
    finally:
        server.shutdown()
    celery = app.extensions["celery"]
    broadcast = timed(lambda: celery.control.inspect(timeout=1.0).active(), BROADCAST_ROUNDS, warmup=1)
    env = app.extensions["supervisor"].child_env()
    argv = [str(ROOT / ".venv" / "bin" / "celery"), "-A", "celery_app", "inspect", "active"]
    cli = timed(lambda: subprocess.run(argv, cwd=str(ROOT), env=env, capture_output=True, check=True),
                CLI_ROUNDS, warmup=0)
    return in_app, over_http, broadcast, cli


def main():
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with private_stack(CELERY_IMPORTS="tests.sample_tasks", WORKER_LOGLEVEL="warning") as (app, _redis):
        stop_monitor = monitor.start(app)
        try:
            assert app.extensions["supervisor"].start(("worker",))["worker"].ok
            name = app.extensions["supervisor"].nodename
            client = api_client(app, "viewer")
            wait_listed(client, name)
            in_app, over_http, broadcast, cli = measure(app, client, name)
        finally:
            stop_monitor.set()
    print(f"worker detail (stats, active, reserved, scheduled, registered, active_queues of {name})")
    print(summary("panel GET /api/workers/<name> (WSGI)", in_app))
    print(summary("panel GET /api/workers/<name> (HTTP)", over_http))
    print(summary("broadcast inspect().active(), timeout=1.0", broadcast))
    print(summary("`celery -A celery_app inspect active` (CLI)", cli))
    panel_ms, inspect_ms = statistics.median(over_http), statistics.median(broadcast)
    print(f"ratio: broadcast inspect / panel detail = {inspect_ms / panel_ms:.0f}x "
          f"(CLI: {statistics.median(cli) / panel_ms:.0f}x)")
    print(f"target: panel detail median <= {TARGET_MS} ms -> {'MET' if panel_ms <= TARGET_MS else 'NOT MET'}")


if __name__ == "__main__":
    main()
