"""No lie across a panel restart: what became of the runs the panel did not see end is worked out, never guessed.

The project ignores its results (PROJ_IGNORE_RESULT=1: no result, no extended result), its worker is started by
hand and lives through the panel's restart, and the restarted panel is a fresh app over the same database and
instance folder, as a deploy restarts it.
"""
import os
import signal
import subprocess
import threading
import time
from datetime import timedelta

import pytest

from app import create_app
from models import Run, db, utcnow
from panel import background
from panel.broker import remote
from panel.runlog import from_events, outcomes, settle
from tests.helpers import CELERY, PROJECT, api_client, run_row, stop_tree, wait_for

RUNS = 10
RUN_S = 2  # each run's length: long enough to stop the panel while some execute and others wait
SETTLE_WAIT_S = 90  # start-up settle: the recorder catches up, one survey, the in-flight second
KEPT = ("INSTANCE_PATH", "SQLALCHEMY_DATABASE_URI", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CELERY_APP",
        "CELERY_WORKDIR", "CELERY_BIN", "TESTING", "API_CHECK_RESPONSES", "STOP_GRACE_S")


@pytest.fixture(params=["redis", "rabbitmq"])
def project(request, make_app, redis_server, monkeypatch):
    """A panel attached to the sample project, on each broker, the project ignoring its results."""
    monkeypatch.setenv("PROJ_IGNORE_RESULT", "1")
    url = redis_server.url if request.param == "redis" else request.getfixturevalue("rabbitmq_url")
    return make_app(CELERY_APP="proj", CELERY_WORKDIR=str(PROJECT), CELERY_BIN=CELERY, CELERY_BROKER_URL=url)


class HandWorker:
    """The project's worker started by hand: the panel's restart does not touch it; stopped by PID at the end."""

    def __init__(self, app, folder):
        self.app, self.folder, self.proc = app, folder, None
        self.name = f"restart-{os.getpid()}@{os.uname().nodename}"

    def start(self):
        argv = [CELERY, "-A", "proj", "worker", "-n", self.name, "-c", "3", "-l", "info", "-E", "-Q", "celery",
                "--without-mingle", "--without-gossip"]
        with open(self.folder / "hand-worker.log", "ab") as log:
            self.proc = subprocess.Popen(argv, cwd=str(PROJECT), env=self.app.extensions["supervisor"].child_env(),
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        celery = self.app.extensions["celery"]
        wait_for(lambda: self.proc.poll() is not None or remote.ping_worker(celery, self.name), 40, "the worker up")
        assert self.proc.poll() is None, self.log()[-3000:]

    def log(self):
        return (self.folder / "hand-worker.log").read_text(errors="replace")

    def ran(self, task_ids):
        text = self.log()
        return all(f"[{task_id}] succeeded" in text for task_id in task_ids)

    def kill(self):
        """SIGKILL to the whole tree: the worker dies mid-task and leaves no word."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=15)

    def stop(self):
        if self.proc is not None:
            stop_tree(self.proc)


@pytest.fixture
def worker(project, tmp_path):
    hand = HandWorker(project, tmp_path)
    hand.start()
    yield hand
    hand.stop()


@pytest.fixture
def panels():
    """panels(app): the whole background of a panel started; every one is stopped at the end."""
    handles = []

    def start(app):
        handle = background.start(app)
        handles.append(handle)
        wait_for(handle.acting.is_set, 30, "the background duties to start")
        wait_for(handle.listening.is_set, 30, "the run log from events to listen")  # on Redis, events before are gone
        return handle
    yield start
    for handle in handles:
        handle.stop()
    _threads_gone()


def _threads_gone():
    def alive():
        return [t.name for t in threading.enumerate() if t.name in ("run-events", "run-reconciler") and t.is_alive()]
    wait_for(lambda: not alive(), 30, lambda: f"the recorder and reconciler to stop; alive: {alive()}")


def restarted(app):
    """A fresh panel over the same database and instance folder, as a deploy starts it."""
    return create_app({key: app.config[key] for key in KEPT})


def _rows(app, ids):
    with app.app_context():
        try:
            return {r.celery_task_id: r for r in db.session.query(Run).filter(Run.celery_task_id.in_(ids))}
        finally:
            db.session.remove()


def test_runs_that_end_while_the_panel_is_down_are_never_failed_nor_left_open(project, worker, panels):
    first = panels(project)
    celery = project.extensions["celery"]
    sent = [celery.send_task("proj.slow", args=[RUN_S]).id for _ in range(RUNS)]
    wait_for(lambda: len(rows := _rows(project, sent)) == RUNS and any(r.status == "running" for r in rows.values()),
             30, "the runs received and one executing")
    first.stop()
    _threads_gone()
    seen = _rows(project, sent)
    assert sum(r.status in ("pending", "running") for r in seen.values()) >= RUNS - 3, "too few open to prove it"
    wait_for(lambda: worker.ran(sent), 60, "the worker to run them all while the panel is down")
    again = restarted(project)
    panels(again)
    rows = wait_for(lambda: (rows := _rows(again, sent)) and all(r.status not in ("pending", "running")
                                                                 for r in rows.values()) and rows,
                    SETTLE_WAIT_S, "every open run settled after the restart")
    for row in rows.values():
        assert (row.task_name, row.args) == ("proj.slow", [RUN_S]), "the row kept what it was"
        assert row.state != "FAILURE" and row.status in ("completed", "unknown"), (row.status, row.state, row.error)
        if row.status == "unknown":
            assert row.state == "ENDED" and "outcome is unknown" in row.error and row.finished_at, row.error
    unknown = {r.celery_task_id for r in rows.values() if r.status == "unknown"}
    listed = api_client(again, "viewer").get("/api/runs?status=unknown&limit=500").get_json()["runs"]
    assert {r["celery_task_id"] for r in listed} >= unknown and all(r["status"] == "unknown" for r in listed)
    if project.config["CELERY_BROKER_URL"].startswith("redis"):
        assert unknown, "on Redis the ends were PUB/SUB and nothing stored them: their outcome is unknown"


def test_a_run_whose_worker_really_restarted_is_lost(project, worker, panels):
    first = panels(project)
    celery = project.extensions["celery"]
    long_run = celery.send_task("proj.slow", args=[300]).id
    wait_for(lambda: (r := run_row(project, long_run)) and r.status == "running", 30, "the run to start")
    first.stop()
    _threads_gone()
    worker.kill()
    worker.start()  # the same node name, a new process: what it held is gone
    again = restarted(project)
    panels(again)
    row = wait_for(lambda: (r := run_row(again, long_run)) and r.status != "running" and r, SETTLE_WAIT_S,
                   "the run to be settled")
    assert (row.status, row.state) == ("failed", "FAILURE") and "restarted after it started this run" in row.error
    assert (row.task_name, row.args) == ("proj.slow", [300])


# ---- the rule itself, over facts written by hand ----------------------------------------------------------------

NOW = utcnow()
LIVE = settle.WorkerFacts(held={"held"}, revoked={"gone-revoked"}, uptime_s=3600.0)
YOUNG = settle.WorkerFacts(held=set(), revoked=set(), uptime_s=3.0)


def facts(**changes):
    base = dict(now=NOW, answered={"w@h": LIVE, "new@h": YOUNG}, silent={"dead@h"}, waiting={"queued"}, complete=True,
                stored={"stored": {"status": "SUCCESS"}}, no_store=False)
    return settle.Facts(**dict(base, **changes))


def run(task_id, status="running", worker="w@h", age_s=60):
    return settle.OpenRun(task_id, status, worker, NOW - timedelta(seconds=age_s))


@pytest.mark.parametrize("open_run, expected", [
    (run("held"), None),
    (run("stored"), settle.STORED),
    (run("queued", "pending", None), None),
    (run("gone-revoked"), "REVOKED"),
    (run("ended"), "ENDED"),
    (run("ended", "pending"), "ENDED"),
    (run("ended", "pending", None), "ENDED"),
    (run("lost", worker="dead@h"), "FAILURE"),
    (run("busy", worker="slow@h"), None),
    (run("lost", worker="new@h"), "FAILURE"),
    (run("ended", "pending", worker="new@h"), "ENDED"),
])
def test_each_open_run_ends_as_what_is_known_of_it(open_run, expected):
    verdict = settle.decide(open_run, facts())
    assert (verdict if verdict in (None, settle.STORED) else verdict.state) == expected, verdict


def test_nothing_is_decided_that_an_unread_queue_or_a_silent_worker_could_still_hold():
    never_received = run("ended", "pending", None)
    assert settle.decide(never_received, facts(waiting=None)) is None
    assert settle.decide(never_received, facts(complete=False)) is None
    assert settle.decide(run("ended"), facts(stored=None)) is None, "the backend away: its silence proves nothing"
    assert settle.decide(run("ended", "pending", worker="new@h"), facts(waiting=None)) is None


def test_an_unknown_ending_is_its_own_status_and_a_later_success_still_moves_it(make_app):
    app = make_app()
    with app.app_context():
        db.session.add(Run(celery_task_id="u1", task_name="proj.slow", status="running", state="STARTED",
                           started_at=utcnow()))
        db.session.commit()
        ending = outcomes.unknown("Ended while the panel was not watching")
        assert ending.status == "unknown" and outcomes.end(["u1"], ending).runs == 1
        assert outcomes.end(["u1"], outcomes.lost("w@h", "is gone")).runs == 0, "the first ending stays"
        db.session.remove()
    row = run_row(app, "u1")
    assert (row.status, row.state) == ("unknown", "ENDED") and row.error.endswith("so its outcome is unknown")
    client = api_client(app, "viewer")
    assert [r["status"] for r in client.get("/api/runs?status=unknown").get_json()["runs"]] == ["unknown"]
    assert client.get("/api/runs?status=FAILURE").get_json()["runs"] == [], "an unknown outcome is not a failure"
    listed = client.get("/runs?status=unknown").get_data(as_text=True)
    page = client.get("/runs/u1").get_data(as_text=True)
    assert 'data-state="ENDED"' in listed and "outcome unknown" in listed
    assert 'id="run-unknown"' in page and "not counted as failed" in page
    with app.app_context():
        from_events.EventWriter(db.engine).write([{"type": "task-succeeded", "uuid": "u1", "result": "3",
                                                   "timestamp": time.time() + 1}])
        db.session.remove()
    assert (run_row(app, "u1").status, run_row(app, "u1").state) == ("completed", "SUCCESS")
