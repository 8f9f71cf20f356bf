"""The watchdog against real worker and Beat processes, real SIGKILLs and the real process table."""
import os
import re
import signal
from datetime import datetime

import psutil
import pytest

from models import AlertEvent, BeatClaim, ProcessEvent, Run, Schedule, db
from panel import background
from panel.host import oscontrol, processes
from panel.host.processes import BEAT, WORKER
from tests.alert_receivers import Receiver
from tests.helpers import FAULTS, WATCHDOG_FAST, api_client, dog, run_row, start_worker, wait_for


def live(app, kind):
    return [r.pid for r in processes.scan(app.config["INSTANCE_PATH"])[kind]]


def events(app, program, action=None):
    with app.app_context():
        query = db.session.query(ProcessEvent).filter_by(program=program)
        if action:
            query = query.filter_by(action=action)
        found = query.order_by(ProcessEvent.id).all()
        db.session.remove()
        return found


@pytest.fixture
def watched(make_app):
    """An app with a fast watchdog running in its background thread; stopped before the processes are."""
    handles = []

    def factory(*on, **extra):
        app = make_app(**{**WATCHDOG_FAST, **extra})
        handle = background.start(app)
        handles.append(handle)
        wait_for(handle.acting.is_set, 10, "the background duties to start")
        client = api_client(app, "operator")
        for kind in on:
            assert client.post(f"/api/watchdog/{kind}", json={"enabled": True}).status_code == 200
        return app
    yield factory
    for handle in handles:
        handle.stop()


def ticks_after(app, n):
    """Wait until the watchdog has looked `n` more times: what it would do, it has had the chance to do."""
    start = app.extensions.get("watchdog_ticks", 0)
    wait_for(lambda: app.extensions.get("watchdog_ticks", 0) >= start + n, 30, f"{n} watchdog ticks")


def test_off_a_beat_killed_by_hand_stays_stopped_and_is_a_history_row_and_an_alert(watched):
    receiver = Receiver()
    try:
        app = watched(ALERT_WEBHOOK_URL=receiver.url("/ok"))
        assert app.extensions["supervisor"].start((BEAT,))[BEAT].ok
        [pid] = live(app, BEAT)
        wait_for(lambda: dog(app, BEAT)["state"] == "RUNNING", 10, "the off watchdog's row to say RUNNING")
        os.kill(pid, signal.SIGKILL)
        [crash] = wait_for(lambda: events(app, BEAT, "crash"), 15, "a history row for the unasked exit")
        assert crash.exit_status == -signal.SIGKILL and crash.pids == [pid] and "watchdog is off" in crash.message
        wait_for(lambda: any(body["kind"] == "process_stopped" and "beat" in body["subject"].lower()
                             for _, body, _ in receiver.posts), 15, "the alert at the webhook")
        ticks_after(app, 5)
        assert live(app, BEAT) == [] and [e for e in events(app, BEAT, "start") if e.cause == "watchdog"] == []
        assert dog(app, BEAT)["state"] == "EXITED" and "SIGKILL" in dog(app, BEAT)["reason"]
        beat = api_client(app, "viewer").get("/scheduler/celery-status/").get_json()["beat"]
        assert beat["active"] is False and beat["watchdog"]["enabled"] is False
    finally:
        receiver.stop()
    FAULTS.append(("Beat SIGKILLed, watchdog off", "stays stopped; a crash row (exit -9) and an alert"))


def test_a_worker_killed_with_sigkill_is_reaped_at_once_never_a_zombie(make_app):
    app = make_app()
    pid = start_worker(app)  # a child of this process, through the supervisor
    os.kill(pid, signal.SIGKILL)
    # Nobody asks for the status meanwhile: the reaping must not wait for a caller.
    wait_for(lambda: not psutil.pid_exists(pid), 10, "the dead worker to be reaped (not a zombie)")
    assert oscontrol.exit_status(pid) == -signal.SIGKILL


def test_the_watchdog_says_what_is_true_when_off_and_after_an_automatic_restart(watched):
    app = watched()
    pid = start_worker(app)
    wait_for(lambda: dog(app, WORKER)["state"] == "RUNNING" and dog(app, WORKER)["pids"] == [pid], 10,
             "the off watchdog to say RUNNING with the PID (it said STOPPED)")
    operator = api_client(app, "operator")
    assert operator.post(f"/api/watchdog/{WORKER}", json={"enabled": True}).status_code == 200
    os.kill(pid, signal.SIGKILL)  # within WATCHDOG_STABLE_S of its start: a quick failure, then a retry
    new = wait_for(lambda: [e for e in events(app, WORKER, "start") if e.cause == "watchdog" and e.outcome == "ok"],
                   40, "the watchdog's restart")[-1].pids
    state = wait_for(lambda: (d := dog(app, WORKER)) and d["pids"] == new and d, 10, "the row to follow the restart")
    assert state["state"] == "RUNNING" and state["reason"].startswith("started again by the watchdog"), state
    health = api_client(app, "viewer").get("/api/health").get_json()["worker"]
    assert health["active"] and health["watchdog"]["state"] == "RUNNING" and health["pids"] == new


def test_worker_killed_mid_task_is_restarted_and_its_run_fails_with_the_reason(watched):
    app = watched(WORKER)
    wait_for(lambda: dog(app, WORKER)["state"] == "RUNNING", 30, "the watchdog to start the worker")
    old = live(app, WORKER)
    sent = app.extensions["celery"].send_task("tests.sleep", args=[60])
    wait_for(lambda: (r := run_row(app, sent.id)) and r.status == "running", 30, "the run to start")
    os.kill(old[0], signal.SIGKILL)
    restarted = wait_for(lambda: [e for e in events(app, WORKER, "start") if e.cause == "watchdog" and e.pids != old
                                  and e.outcome == "ok"], 40, "the watchdog to restart the worker (it answers a ping)")
    new = restarted[-1].pids
    assert live(app, WORKER) == new and new != old
    run = wait_for(lambda: (r := run_row(app, sent.id)) and r.status == "failed" and r, 10, "the run marked failed")
    assert "died (killed by SIGKILL)" in run.error and run.finished_at is not None
    [crash] = events(app, WORKER, "crash")
    assert crash.exit_status == -signal.SIGKILL and crash.actor == "watchdog" and crash.pids == old
    with app.app_context():
        assert db.session.query(Run).filter_by(status="running").count() == 0
        assert db.session.query(AlertEvent).filter_by(kind="process_stopped").count() == 1
    assert len(live(app, WORKER)) == 1
    FAULTS.append(("worker SIGKILLed mid-task, watchdog on",
                   f"crash recorded (exit -9), run failed with the reason, worker restarted as PID {new[0]}"))


def test_a_stop_through_the_panel_is_not_a_crash(watched):
    app = watched(BEAT)
    wait_for(lambda: live(app, BEAT), 30, "the watchdog to start Beat")
    client = api_client(app, "operator")
    assert client.post("/scheduler/stop-celery/").status_code == 200
    ticks_after(app, 5)
    assert live(app, BEAT) == [] and events(app, BEAT, "crash") == []
    assert dog(app, BEAT)["state"] == "STOPPED" and dog(app, BEAT)["desired"] == "stopped"
    assert client.post("/scheduler/start-celery/").status_code == 200
    wait_for(lambda: dog(app, BEAT)["state"] == "RUNNING", 10, "the watchdog to see Beat running again")


def test_a_program_that_cannot_start_backs_off_with_growing_delays_then_goes_fatal(watched):
    app = watched(CELERY_IMPORTS="tests.sample_tasks,no_such_module_here")  # the worker dies at start-up
    client = api_client(app, "operator")
    assert client.post(f"/api/watchdog/{WORKER}", json={"enabled": True}).status_code == 200
    wait_for(lambda: dog(app, WORKER)["state"] == "FATAL", 90, "the watchdog to give up")
    backoffs = events(app, WORKER, "backoff")
    assert len(backoffs) == 2 and len(events(app, WORKER, "fatal")) == 1
    assert "next attempt in 0.5 s" in backoffs[0].message and "next attempt in 1 s" in backoffs[1].message
    status = api_client(app, "viewer").get("/scheduler/celery-status/").get_json()["worker"]
    assert status["state"] == "FATAL" and status["watchdog"]["failures"] == 3
    with app.app_context():
        assert db.session.query(AlertEvent).filter_by(kind="process_fatal").count() == 1
    ticks_after(app, 5)
    assert len(events(app, WORKER, "start")) == 3  # FATAL waits for a person: no fourth attempt
    FAULTS.append(("worker that cannot start (import error), watchdog on",
                   "3 attempts, BACKOFF 0.5 s then 1 s, then FATAL with an alert; no further attempt"))


def test_beat_killed_is_restarted_and_sends_no_scheduled_run_twice(watched):
    app = watched(BEAT)
    with app.app_context():
        db.session.add(Schedule(name="every 2 s", task="tests.add", args=[1, 2], kwargs={}, interval_seconds=2))
        db.session.commit()
        db.session.remove()
    old = wait_for(lambda: live(app, BEAT), 30, "the watchdog to start Beat")

    def sent():
        """The runs Beat sent, in the order they went out: each its claimed slot (due_at) and the Beat that sent it."""
        with app.app_context():
            found = db.session.query(BeatClaim.due_at, BeatClaim.sent_at, BeatClaim.claimed_by,
                                     BeatClaim.celery_task_id).filter_by(outcome="sent").order_by(BeatClaim.sent_at)
            rows = found.all()
            db.session.remove()
            return rows
    wait_for(lambda: len(sent()) >= 2, 30, "two scheduled sends")
    os.kill(old[0], signal.SIGKILL)
    wait_for(lambda: [p for p in live(app, BEAT) if p not in old], 30, "the watchdog to restart Beat")
    count = len(sent())
    wait_for(lambda: len(sent()) >= count + 3, 40, "Beat to send on schedule again")
    sends = sent()
    with app.app_context():
        runs = sorted(task_id for (task_id,) in db.session.query(Run.celery_task_id))
        db.session.remove()
    assert runs == sorted(s.celery_task_id for s in sends), "every run sent is one claimed slot: none sent twice"
    # A run due before the Beat that sent it started was missed (while Beat was down, or before it first came up)
    # and is its catch-up ("once"): sent the moment that Beat starts, wherever that falls between two slots, so the
    # gap from it to the next slot's send may be anything. Every other send went out on its slot, 2 s after the last.
    log = app.extensions["supervisor"].log_path(BEAT).read_text(errors="replace")
    started = {beat: datetime.fromisoformat(at).replace(tzinfo=None)
               for beat, at in re.findall(r"beat id (\S+), started (\S+)\)", log)}
    caught_up = {s.celery_task_id for s in sends if s.due_at < started[s.claimed_by]}
    gaps = [(b.sent_at - a.sent_at).total_seconds() for a, b in zip(sends, sends[1:])
            if a.celery_task_id not in caught_up]
    assert len(gaps) >= 2 and min(gaps) >= 1.5, (gaps, sends, started)  # on a 2 s schedule, never two slots at once
    assert len(live(app, BEAT)) == 1
    FAULTS.append(("Beat SIGKILLed, watchdog on",
                   f"restarted; {len(sends)} sends ({len(caught_up)} catch-up), shortest gap between on-time sends "
                   f"{min(gaps):.2f} s for a 2 s schedule (none twice)"))
