"""The JSON API fuzzed from its own OpenAPI document against a live private stack: every operation, every check.

A private Redis, the panel served over HTTP, a real worker and the cluster monitor: routes that talk to
the broker get past their 503 guard, so their input handling is fuzzed too. Destructive calls (stop
Celery, shut a worker down, purge, delete) are fine here; the finalizers stop whatever the run started.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from panel.cluster import monitor
from tests.alert_receivers import Receiver
from tests.helpers import api_client, start_worker, wait_for

CONFIG = Path(__file__).with_name("schemathesis.toml")
SEED = os.environ.get("FUZZ_SEED", "20261130")  # fixed, so CI is repeatable; set FUZZ_SEED to explore
MAX_EXAMPLES = os.environ.get("FUZZ_MAX_EXAMPLES", "8")  # about 3 minutes on two cores (10: 3m11s, 5: 2m03s)
RUN_LIMIT_S = 900


@pytest.mark.timeout(RUN_LIMIT_S + 300)
def test_every_operation_passes_every_schemathesis_check(make_app, tmp_path, serve):
    receiver = Receiver()  # so the test alert really goes somewhere
    app = make_app(ALERT_WEBHOOK_URL=receiver.url("/ok"), WORKER_LOGLEVEL="warning")
    token = api_client(app, "admin").environ_base["HTTP_AUTHORIZATION"].split(" ", 1)[1]
    stop_monitor = monitor.start(app)
    base = serve(app)
    try:
        start_worker(app)
        viewer = api_client(app, "viewer")
        wait_for(lambda: viewer.get("/api/workers").get_json()["workers"], 30, "the worker in /api/workers (links)")
        url = f"{base}/api/openapi.json"
        argv = [str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(CONFIG), "run", url,
                "--checks", "all", "--header", f"Authorization: Bearer {token}", "--max-examples", MAX_EXAMPLES,
                "--seed", SEED, "--workers", "1", "--request-timeout", "60", "--no-color"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_LIMIT_S, cwd=tmp_path)  # its cache too
    finally:
        stop_monitor.set()
        receiver.stop()
    report = done.stdout
    assert done.returncode == 0, f"schemathesis found problems:\n{report[-30000:]}\n{done.stderr[-3000:]}"
    summary = report[report.find("SUMMARY"):]
    assert "Tested: " in summary and "Failures:" not in summary, summary
    print(report[report.find("WARNINGS"):] if "WARNINGS" in report else summary)  # e.g. a path that kept 404ing
