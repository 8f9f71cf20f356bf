"""The panel's start with a backlog of open runs: time from its start to every open run settled.

10,000 runs the log shows open (running, received by a worker, and sent but never seen received) whose ends the
panel missed, a real project worker alive that holds none of them, the project ignoring its results (Redis,
SQLite). Each repeat starts a fresh panel (app and background) over the same database, as a deploy restarts it.
Target: bounded, one survey for all runs (inspect batched per worker, not per run). `--runs N`, `--repeats N`.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import delete, func, insert, select  # noqa: E402

from bench.common import private_stack  # noqa: E402
from models import PENDING, RUNNING, Run, db, utcnow  # noqa: E402

OPEN_RUNS = 10_000
REPEATS = 3
SETTLE_LIMIT_S = 300
AGE_S = 6  # the backlog's runs began this long ago: past the reconciler's MIN_AGE_S, after the worker started
KEPT = ("INSTANCE_PATH", "SQLALCHEMY_DATABASE_URI", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CELERY_APP",
        "CELERY_WORKDIR", "CELERY_BIN", "API_CHECK_RESPONSES", "CELERY_IMPORTS")


def _worker(app, folder):
    """The project's worker, started by hand so that it outlives every panel start; returns (process, node name)."""
    from panel.broker import remote
    from tests.helpers import CELERY, PROJECT, wait_for
    name = f"bench-settle-{os.getpid()}@{os.uname().nodename}"
    log = open(folder / "bench-worker.log", "ab")
    proc = subprocess.Popen([CELERY, "-A", "proj", "worker", "-n", name, "-c", "2", "-E", "-l", "warning",
                             "--without-mingle", "--without-gossip"], cwd=str(PROJECT),
                            env=app.extensions["supervisor"].child_env(), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    log.close()
    wait_for(lambda: proc.poll() is None and remote.ping_worker(app.extensions["celery"], name), 60, "worker up")
    time.sleep(AGE_S + 3)  # up longer than the runs are old: the runs it "held" ended, it did not restart
    return proc, name


def _open_backlog(app, runs, worker):
    """The backlog: runs open in the log, ended meanwhile; a third each running, received, and only sent."""
    then = utcnow() - timedelta(seconds=AGE_S)  # after the worker's start: it did not restart since
    rows = []  # a fresh backlog each repeat: the one before was settled
    for n in range(runs):
        kind = n % 3
        rows.append({"celery_task_id": str(uuid.uuid4()), "task_name": "proj.slow", "args": [1], "kwargs": {},
                     "status": RUNNING if kind == 0 else PENDING, "state": ("STARTED", "RECEIVED", "PENDING")[kind],
                     "queued_at": then, "started_at": then if kind == 0 else None,
                     "worker": worker if kind < 2 else None, "retries": 0})
    with app.app_context():
        db.session.execute(delete(Run))
        db.session.execute(insert(Run), rows)
        db.session.commit()
        db.session.remove()


def _open_count(app):
    with app.app_context():
        try:
            return db.session.scalar(select(func.count()).select_from(Run).where(Run.status.in_((PENDING, RUNNING))))
        finally:
            db.session.remove()


def _one_start(config):
    """Seconds from a fresh panel's start to no open run; the endings it wrote by status."""
    from app import create_app
    from panel import background
    app = create_app(dict(config))
    started = time.perf_counter()
    handle = background.start(app)
    try:
        while _open_count(app):
            if time.perf_counter() - started > SETTLE_LIMIT_S:
                raise SystemExit(f"not settled within {SETTLE_LIMIT_S}s: {_open_count(app)} still open")
            time.sleep(0.05)
        took = time.perf_counter() - started
    finally:
        handle.stop()
    with app.app_context():
        by_status = dict(db.session.execute(select(Run.status, func.count()).group_by(Run.status)).all())
        db.session.remove()
    return took, by_status


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=OPEN_RUNS)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    args = parser.parse_args()
    os.environ["PROJ_IGNORE_RESULT"] = "1"  # the project keeps no result: nothing to read back
    from tests.helpers import CELERY, PROJECT, stop_tree
    project = {"CELERY_APP": "proj", "CELERY_WORKDIR": str(PROJECT), "CELERY_BIN": CELERY, "CELERY_IMPORTS": ""}
    with private_stack(**project) as (app, _):
        folder = Path(app.config["INSTANCE_PATH"])
        proc, worker = _worker(app, folder)
        try:
            config = {key: app.config[key] for key in KEPT}
            times = []
            for n in range(args.repeats):
                _open_backlog(app, args.runs, worker)
                took, by_status = _one_start(config)
                times.append(took)
                print(f"  start {n + 1}: {args.runs} open runs settled in {took:.2f} s -> {by_status}")
        finally:
            stop_tree(proc)
    print(f"restart settle: {args.runs} open runs, start to all settled: median {statistics.median(times):.2f} s "
          f"(n={len(times)}; Redis, SQLite, one live project worker)")


if __name__ == "__main__":
    main()
