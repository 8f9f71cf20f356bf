"""The panel under a real gunicorn with three workers: one background actor, takeover, and status under load."""
import os
import signal
import time

import pytest

from models import db
from panel import background
from panel.host import processes
from panel.host.processes import BEAT, WORKER
from tests.gunicorn_stack import CONTROLS, POLL_PATHS, GunicornPanel, run_load
from tests.helpers import FAULTS, celery_main_pids, wait_for

WORKERS = 3
TAKEOVER_WAIT_S = 20  # the standby retry (background.STANDBY_S) plus a worker's respawn on a busy machine
LOAD_POLLERS = 50
LOAD_SECONDS = 15
FAST_WATCHDOG = {"WATCHDOG_INTERVAL_S": "0.3", "WATCHDOG_STABLE_S": "4", "WATCHDOG_BACKOFF_S": "0.5"}


@pytest.fixture(scope="module")
def served(tmp_path_factory, redis_server):
    """gunicorn on a private instance and the suite's Redis; gunicorn and all the Celery it started stopped by PID."""
    panel = GunicornPanel(tmp_path_factory.mktemp("gunicorn"), redis_server.url, workers=WORKERS, **FAST_WATCHDOG)
    yield panel
    panel.stop()


def current_actor(served):
    """The background actor's pid once it is one of gunicorn's current workers."""
    pid = background.actor_pid(served.instance)
    return pid if pid in served.worker_pids() else None


def health_actor(served):
    body = served.session("viewer").get(served.url("/api/health"), timeout=30).json()
    return body["background_actor_pid"]


def test_serve_runs_three_workers_and_exactly_one_holds_the_background_lock(served):
    assert len(wait_for(lambda: len(served.worker_pids()) == WORKERS and served.worker_pids(), 30, "3 workers"))
    actor = wait_for(lambda: current_actor(served), TAKEOVER_WAIT_S, "a gunicorn worker to act")
    # whichever worker answers, every one of them names the same actor
    assert {health_actor(served) for _ in range(3 * WORKERS)} == {actor}


def test_when_the_acting_worker_is_killed_another_worker_takes_over(served):
    actor = wait_for(lambda: current_actor(served), TAKEOVER_WAIT_S, "a gunicorn worker to act")
    os.kill(actor, signal.SIGKILL)  # a worker of the gunicorn this module started
    killed_at = time.monotonic()
    successor = wait_for(lambda: (current_actor(served) or actor) != actor and current_actor(served),
                         TAKEOVER_WAIT_S, "another worker to take the background duties over")
    print(f"takeover after SIGKILL of pid {actor}: pid {successor} in {time.monotonic() - killed_at:.1f} s")
    assert successor != actor
    FAULTS.append(("the gunicorn worker running the background duties SIGKILLed",
                   f"worker {successor} took over; /api/health names it"))
    assert wait_for(lambda: health_actor(served) == successor, 10, "health to name the new actor")


def test_a_panel_process_that_never_looked_stops_what_another_worker_started(served):
    operator = served.session("operator")
    assert operator.post(served.url("/scheduler/start-celery/"), timeout=150).status_code == 200
    fresh = served.local_app()  # a new process's view: it has not read the table yet
    try:
        killed, survivors = fresh.extensions["supervisor"].stop()
    finally:
        with fresh.app_context():
            db.engine.dispose()
    assert killed == {WORKER: 1, BEAT: 1} and survivors == []
    assert processes.scan(served.instance) == {WORKER: [], BEAT: []}


def beats(served):
    return [r.pid for r in processes.scan(served.instance)[BEAT]]


def test_only_one_watchdog_restarts_a_killed_beat_under_three_workers(served):
    operator = served.session("operator")
    assert operator.post(served.url("/api/watchdog/beat"), json={"enabled": True}, timeout=30).status_code == 200
    try:
        assert operator.post(served.url("/scheduler/start-celery/"), timeout=150).status_code == 200
        [old] = beats(served)
        os.kill(old, signal.SIGKILL)  # the Beat this module's gunicorn started
        seen = []

        def replaced():
            pids = beats(served)
            seen.append(max(len(pids), len(celery_main_pids(served.instance)[BEAT])))  # the scanner's and psutil's
            return [pid for pid in pids if pid != old]

        wait_for(replaced, 30, "the watchdog to start a new Beat")
        deadline = time.monotonic() + 3  # room for a second watchdog to act, were there one
        while time.monotonic() < deadline:
            replaced()
            time.sleep(0.05)
        events = operator.get(served.url("/api/process-events?program=beat"), timeout=30).json()["events"]
        by_watchdog = [e for e in events if e["action"] == "start" and e["cause"] == "watchdog"]
        assert max(seen) == 1 and len(by_watchdog) == 1, (seen, events)
        FAULTS.append((f"Beat SIGKILLed under gunicorn ({WORKERS} workers), watchdog on",
                       "restarted exactly once, by the one acting worker; never two Beats"))
    finally:
        operator.post(served.url("/api/watchdog/beat"), json={"enabled": False}, timeout=30)
        operator.post(served.url("/scheduler/stop-celery/"), timeout=150)


def test_fifty_pollers_with_interleaved_control_get_no_5xx_and_never_a_duplicate_process(served):
    result = run_load(served, LOAD_POLLERS, LOAD_SECONDS)
    control_codes = [code for _, code, _ in result.controls]
    print(f"\n{result.polls()} polls in {result.seconds:.1f} s by {LOAD_POLLERS} clients; codes "
          f"{ {p: dict(c) for p, c in result.codes.items()} }; controls {result.controls}; "
          f"{result.samples} table samples, most seen {dict(result.most)}")
    assert set(result.codes) == set(POLL_PATHS)
    assert result.server_errors() == 0, result.codes
    assert all(set(c) == {200} for c in result.codes.values()), result.codes
    assert len(control_codes) >= len(CONTROLS), "control requests must interleave with the polls"
    assert set(control_codes) <= {200, 409}, result.controls  # 409: waited past CONTROL_LOCK_WAIT_S, counted
    assert result.samples > LOAD_SECONDS * 2  # the sampler looked all along, even on a busy machine
    assert result.most[WORKER] <= 1 and result.most[BEAT] <= 1, dict(result.most)
    # psutil's own count, not the scanner's: never two either, and it saw what the scanner saw (it is not blind)
    assert dict(result.most_by_psutil) == dict(result.most), (dict(result.most_by_psutil), dict(result.most))
    FAULTS.append((f"{LOAD_POLLERS} clients polling status under gunicorn ({WORKERS} workers), controls interleaved",
                   f"{result.polls()} polls in {result.seconds:.0f} s, 0 5xx; controls {sorted(set(control_codes))}; "
                   f"{result.samples} table samples, never two workers or two Beats"))
