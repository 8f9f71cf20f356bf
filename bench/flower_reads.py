"""One run, the workers list and a page of 50 runs: the panel beside Flower, over HTTP, against one cluster.

The panel runs as `make serve` runs it (gunicorn, gthread) with a Bearer token; Flower 2.2 runs from a virtualenv
of its own (.venv/flower, pinned in bench/flower-requirements.txt) with its unauthenticated API, answering
from its in-memory event state. One worker (events on) runs a burst of tasks both see; then each read is asked of
both in turns, on one keep-alive connection each. Target: the panel's median at or below Flower's. Beside them, each
server's floor: the panel's /healthz (no database, no login) and Flower's /healthcheck, asked the same way.
Usage: `.venv/bin/python -m bench.flower_reads [TASKS]`.
"""
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import print_rows, row  # noqa: E402
from panel.broker import connection  # noqa: E402
from tests.gunicorn_stack import GunicornPanel  # noqa: E402
from tests.helpers import RedisServer, free_port, wait_for  # noqa: E402

HERE = Path(__file__).resolve().parent
VENV = HERE.parent / ".venv" / "flower"  # inside the panel's venv: ignored by git and the house checks, gone with it
PINS = HERE / "flower-requirements.txt"
TASKS = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000
ROUNDS = 300
BURST_WAIT_S = 180
FLOWER_BOOT_S = 60
FLOOR = "floor: health check"  # each server's cheapest answer, asked the same way as the reads


def flower_command():
    """Flower's `celery` in its own virtualenv, installed from the pins once (again when they change)."""
    stamp = VENV / f".installed-{hashlib.sha1(PINS.read_bytes()).hexdigest()[:12]}"
    if not stamp.exists():
        if not (VENV / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
        subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "-r", str(PINS)],
                       check=True, timeout=900)
        for old in VENV.glob(".installed-*"):
            old.unlink()
        stamp.touch()
    return str(VENV / "bin" / "celery")


class Flower:
    """A Flower process on a free loopback port, reading the given broker's events; stopped by its PID."""

    def __init__(self, broker_url, folder):
        self.base = f"http://127.0.0.1:{free_port()}"
        port = self.base.rsplit(":", 1)[1]
        self.log = open(folder / "flower.out", "ab")
        self.proc = subprocess.Popen([flower_command(), "--broker", broker_url, "flower", f"--port={port}",
                                      "--address=127.0.0.1", "--persistent=False"],
                                     env=dict(os.environ, FLOWER_UNAUTHENTICATED_API="true"),
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(self._up, FLOWER_BOOT_S, "Flower to answer /healthcheck")

    def _up(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"Flower exited with {self.proc.returncode}")
        try:
            return requests.get(self.base + "/healthcheck", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


def burst(panel, redis_url):
    """TASKS runs of bench.tick, waited for until the worker ran them all; the id of one in the middle."""
    key = f"bench-flower-{uuid.uuid4().hex}"
    celery = panel.app.extensions["celery"]
    ids = [celery.send_task("bench.tick", args=[key]).id for _ in range(TASKS)]
    client = connection.redis_client(redis_url)
    wait_for(lambda: int(client.get(key) or 0) >= TASKS, BURST_WAIT_S, f"{TASKS} bench.tick runs to finish")
    return ids[TASKS // 2]


def seen_by_both(http, flower, panel, task_id):
    """Both have the run and the worker: the panel has recorded it, Flower has had its events."""
    said = {}

    def ready():
        said["panel"] = http.get(panel.url(f"/api/runs/{task_id}"), timeout=5).status_code
        said["flower run"] = requests.get(f"{flower.base}/api/task/info/{task_id}", timeout=5).status_code
        workers = requests.get(f"{flower.base}/api/workers?refresh=true", timeout=10)
        said["flower workers"] = (workers.status_code, workers.text[:120])
        return said["panel"] == 200 and said["flower run"] == 200 and workers.status_code == 200 and workers.json()
    wait_for(ready, BURST_WAIT_S, lambda: f"the panel and Flower to both know the run and the worker: {said}")


def reads(panel, flower, task_id):
    """(label, panel URL, Flower URL) of each read compared, and last each server's floor."""
    return [("one run (JSON)", panel.url(f"/api/runs/{task_id}"), f"{flower.base}/api/task/info/{task_id}"),
            ("workers list (JSON)", panel.url("/api/workers"), f"{flower.base}/api/workers"),
            ("page of 50 runs (JSON)", panel.url("/api/runs?limit=50"), f"{flower.base}/api/tasks?limit=50"),
            (FLOOR, panel.url("/healthz"), f"{flower.base}/healthcheck")]


def timed_get(http, url):
    started = time.perf_counter()
    resp = http.get(url, timeout=10)
    elapsed = (time.perf_counter() - started) * 1000
    if resp.status_code != 200:
        raise RuntimeError(f"{url}: {resp.status_code} {resp.text[:200]}")
    return elapsed


def compare(ours_http, theirs_http, pairs):
    """Medians (ms) for each read, panel and Flower asked in turns so both see the same machine."""
    out = {}
    for label, ours_url, theirs_url in pairs:
        ours, theirs = [], []
        for i in range(ROUNDS + 20):
            a = timed_get(ours_http, ours_url)
            b = timed_get(theirs_http, theirs_url)
            if i >= 20:  # the first ones warm both up
                ours.append(a)
                theirs.append(b)
        out[label] = (statistics.median(ours), statistics.median(theirs))
        print(f"{label:<24} panel median {out[label][0]:7.2f} ms   Flower median {out[label][1]:7.2f} ms")
    return out


def results():
    with tempfile.TemporaryDirectory(prefix="panel-bench-flower-") as tmp:
        folder = Path(tmp)
        redis = RedisServer(folder)
        panel = flower = None
        try:
            panel = GunicornPanel(folder, redis.url, imports="bench.bench_tasks")
            flower = Flower(redis.url, folder)  # before the burst: Flower knows only what it saw happen
            http = panel.session("viewer")
            started = panel.session("operator").post(panel.url("/scheduler/start-celery/"), timeout=150)
            assert started.status_code == 200, started.text
            task_id = burst(panel, redis.url)
            seen_by_both(http, flower, panel, task_id)
            medians = compare(http, requests.Session(), reads(panel, flower, task_id))
        finally:
            if flower is not None:
                flower.stop()
            if panel is not None:
                panel.stop()
            redis.stop()
    floor_ours, floor_theirs = medians.pop(FLOOR)
    return [row(f"{label}, panel vs Flower 2.2 ({TASKS:,} runs)", ours, "ms", "<= Flower's median",
                ours <= theirs, f"Flower {theirs:.2f} ms; floors panel {floor_ours:.2f} / Flower {floor_theirs:.2f}")
            for label, (ours, theirs) in medians.items()]


def main():
    print_rows(results())


if __name__ == "__main__":
    main()
