"""Beat sends each due run exactly once, claimed in the database: several Beats, one killed, and runs
missed while no Beat ran, against real Beat processes on Redis and on RabbitMQ."""
import os
import re
import signal
import subprocess
from datetime import datetime, timedelta

from models import BeatClaim, db, utcnow
from panel.config import ROOT
from panel.host.processes import BEAT
from tests.helpers import add_task, end_process, rows, start, wait_for

INTERVAL_S = 2


def hand_beat(app, tmp_path, name="beat2"):
    """Another Beat started by hand, in place, beside the panel's: same instance, same database."""
    log_path = tmp_path / f"{name}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([str(ROOT / "start_celery_beat.sh"), "--foreground"], cwd=str(ROOT),
                                env=app.extensions["supervisor"].child_env(), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    return proc, log_path


def claims_of(app, schedule_id, outcome="sent"):
    with app.app_context():
        try:
            return db.session.query(BeatClaim).filter_by(schedule_id=schedule_id, outcome=outcome).order_by(
                BeatClaim.due_at).all()
        finally:
            db.session.remove()


def test_two_beats_send_each_due_run_once_and_one_killed_leaves_no_gap(broker_app, tmp_path):
    task_id = add_task(broker_app, name="every 2 s", task="tests.add", args=[1, 1], interval_seconds=INTERVAL_S)
    first = start(broker_app, BEAT)[BEAT].pids[0]
    second, second_log = hand_beat(broker_app, tmp_path)
    try:
        wait_for(lambda: "beat id" in second_log.read_text(errors="replace"), 20, "the second Beat to load")
        both_from = utcnow()
        wait_for(lambda: len([c for c in claims_of(broker_app, task_id) if c.due_at > both_from]) >= 10, 40,
                 "20 s of runs with two Beats")
        os.kill(first, signal.SIGKILL)  # no goodbye: nothing of its is released
        killed_at = utcnow()
        wait_for(lambda: len([c for c in claims_of(broker_app, task_id) if c.due_at > killed_at]) >= 4, 30,
                 "the surviving Beat's runs")
    finally:
        end_process(second)
    sent = claims_of(broker_app, task_id)
    dues = [c.due_at for c in sent]
    assert all(b - a == timedelta(seconds=INTERVAL_S) for a, b in zip(dues, dues[1:])), f"a due time skipped: {dues}"
    runs = rows(broker_app, scheduled_task_id=task_id)
    assert sorted(r.celery_task_id for r in runs) == sorted(c.celery_task_id for c in sent), \
        "every message sent is one claimed due time: none sent twice"
    times = sorted(c.sent_at for c in sent)
    longest = max((b - a).total_seconds() for a, b in zip(times, times[1:]))
    assert longest <= INTERVAL_S + 1.5, f"longest gap {longest:.2f} s (one Beat killed at {killed_at})"
    # claimed_by is "host:pid:id" of the Beat that sent it: after the kill, only the second Beat's pid sends
    after_kill = {c.claimed_by.split(":")[1] for c in sent if c.due_at > killed_at}
    assert after_kill == {str(second.pid)}, f"the survivor (pid {second.pid}) carried on alone, not {after_kill}"


def beat_started_at(log_path):
    """When the Beat started last, as it says itself: runs due before that were missed by it."""
    found = re.findall(r"beat id \S+, started (\S+)\)", log_path.read_text(errors="replace"))
    return datetime.fromisoformat(found[-1]).replace(tzinfo=None)


def test_runs_missed_while_beat_was_stopped_follow_each_schedules_catch_up(make_app):
    app = make_app()
    ids = {policy: add_task(app, name=f"{policy} every 2 s", task="tests.add", args=[1, 1],
                            interval_seconds=INTERVAL_S, catch_up=policy) for policy in ("skip", "once", "all")}
    supervisor = app.extensions["supervisor"]
    start(app, BEAT)
    wait_for(lambda: all(claims_of(app, i) for i in ids.values()), 20, "a first run of each")
    killed, still = supervisor.stop((BEAT,))
    assert killed[BEAT] == 1 and not still
    stopped_at = utcnow()
    wait_for(lambda: utcnow() > stopped_at + timedelta(seconds=4 * INTERVAL_S), 15, "four due times to pass")
    start(app, BEAT)
    started_at = beat_started_at(supervisor.log_path(BEAT))
    wait_for(lambda: all(len([c for c in claims_of(app, i) if c.due_at > started_at]) >= 2 for i in ids.values()),
             20, "runs on time again")
    missed = {policy: [c.due_at for c in claims_of(app, i) if stopped_at < c.due_at < started_at]
              for policy, i in ids.items()}
    assert missed["skip"] == [], "skip sends none of the missed runs"
    assert len(missed["once"]) == 1 and len(missed["all"]) >= 4, missed
    dues = [c.due_at for c in claims_of(app, ids["all"])]
    assert all(b - a == timedelta(seconds=INTERVAL_S) for a, b in zip(dues, dues[1:])), "all sends each, in order"
    assert missed["once"][0] > started_at - timedelta(seconds=INTERVAL_S), "once sends the newest missed run"
