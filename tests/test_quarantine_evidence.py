"""The quarantine decides on evidence: on a real worker and broker (Redis and RabbitMQ), two poisons in a row, one
whose id holds spaces and one whose task name holds one, are each quarantined, while a message the worker holds for
its countdown beside them is never counted, stays in the broker and runs at its time; the worker runs at the end."""
import pytest

from models import QuarantinedMessage, Watchdog, db
from panel.host.processes import WORKER
from tests.helpers import FAULTS, run_row, start_worker, wait_for
from tests.test_poison import DEPTH, kept, nested

COUNTDOWN_S = 45  # long enough that the held message waits through both poisons' deaths, even on a loaded machine
WAIT_S = 240


def counted(app, task_id):
    """The quarantine's record of a message (deaths counted against it), None when it was never a suspect."""
    with app.app_context():
        try:
            return db.session.query(QuarantinedMessage).filter_by(celery_task_id=task_id).one_or_none()
        finally:
            db.session.remove()


def watchdog_state(app):
    with app.app_context():
        try:
            return db.session.get(Watchdog, WORKER).state
        finally:
            db.session.remove()


def test_two_poisons_with_spaces_are_quarantined_and_the_message_held_for_its_countdown_runs_at_its_time(guarded):
    app = guarded
    celery, supervisor = app.extensions["celery"], app.extensions["supervisor"]
    start_worker(app)
    held = celery.send_task("tests.add", args=(20, 22), countdown=COUNTDOWN_S)
    wait_for(lambda: f"[{held.id}] received" in supervisor.log_path(WORKER).read_text(errors="replace"), 60,
             "the worker to receive the countdown message and hold it")
    by_id = celery.send_task("crawl_url", kwargs={"url": nested(DEPTH)}, task_id="poison id with spaces 1")
    by_name = celery.send_task("tests.echo with space", kwargs={"value": nested(DEPTH)})
    marker = celery.send_task("tests.add", args=(2, 3))

    wait_for(lambda: {row.celery_task_id for row in kept(app)} == {by_id.id, by_name.id}, WAIT_S,
             lambda: f"both poisons in the quarantine (kept: {[r.celery_task_id for r in kept(app)]})")
    assert counted(app, held.id) is None, "the message held for its countdown was never a suspect"
    assert counted(app, marker.id) is None, "the message behind the poisons was never a suspect"
    for row in kept(app):
        assert "RecursionError" in row.evidence, row.evidence
    done = wait_for(lambda: (r := run_row(app, marker.id)) and r.status == "completed" and r, 60,
                    "the message behind the poisons to run")
    assert done.result == "5"
    ran = wait_for(lambda: (r := run_row(app, held.id)) and r.status == "completed" and r, COUNTDOWN_S + 60,
                   "the held message to run at its time")
    assert ran.result == "42" and ran.started_at >= ran.eta, (ran.started_at, ran.eta)
    assert counted(app, held.id) is None
    first_death = min(row.first_seen for row in kept(app))
    assert first_death < ran.eta, "the worker died while it held the countdown message"
    wait_for(lambda: supervisor.host.scan()[WORKER] and watchdog_state(app) == "RUNNING", 30,
             "the worker running at the end, as the watchdog sees it")
    broker = app.config["CELERY_BROKER_URL"].split(":", 1)[0]
    FAULTS.append((f"two poisons in a row ({broker}: an id with spaces, a task name with one) beside a countdown "
                   "message", "both quarantined, the held message untouched and run at its time; the worker RUNNING"))


def test_a_message_a_sigkilled_worker_held_for_its_countdown_goes_back_to_its_queue_and_runs_at_its_time(guarded):
    """Killed, the worker restores nothing: on Redis its held message would wait in kombu's unacknowledged set for
    the visibility timeout (an hour); the panel gives it back at once (RabbitMQ requeues it itself)."""
    import os
    import signal
    app = guarded
    celery, supervisor = app.extensions["celery"], app.extensions["supervisor"]
    first = start_worker(app)
    held = celery.send_task("tests.add", args=(4, 5), countdown=12)
    wait_for(lambda: f"[{held.id}] received" in supervisor.log_path(WORKER).read_text(errors="replace"), 60,
             "the worker to receive the countdown message and hold it")
    os.kill(first, signal.SIGKILL)
    ran = wait_for(lambda: (r := run_row(app, held.id)) and r.status == "completed" and r, 90,
                   "the held message to run on the restarted worker")
    assert ran.result == "9" and ran.started_at >= ran.eta, (ran.started_at, ran.eta)
    assert ran.worker and supervisor.host.scan()[WORKER][0].pid != first
    assert counted(app, held.id) is None, "a SIGKILL blames no message"


@pytest.mark.parametrize("name", ["poison id with spaces 2"])
def test_the_crash_log_reads_ids_and_task_names_that_hold_spaces(name):
    from panel.supervision import crashlog
    log = "\n".join([
        "[2026-12-04 15:14:55,757: INFO/MainProcess] Connected to redis://127.0.0.1:1/0",
        f"[2026-12-04 15:14:57,871: INFO/MainProcess] Task crawl url[{name}] received",
        "[2026-12-04 15:14:57,878: CRITICAL/MainProcess] Unrecoverable error: RecursionError('maximum')",
    ])
    died = crashlog.death(log)
    assert died.held == ((name, "crawl url"),)


LIFE = "[2026-12-04 15:14:55,757: INFO/MainProcess] Connected to redis://127.0.0.1:1/0"


def test_a_killed_worker_blames_no_message_and_a_crashed_one_points_at_one():
    from panel.supervision import crashlog
    log = "\n".join([LIFE, "[t: INFO/MainProcess] Task tests.add[held-1] received",
                     "[t: INFO/MainProcess] Task tests.add[last-1] received"])
    assert not crashlog.death(log, exit_status=-9).by_message, "a SIGKILL is nobody's message"
    assert not crashlog.death(log, exit_status=0).by_message
    segv = crashlog.death(log, exit_status=-11)
    assert segv.by_message and "signal 11" in segv.evidence


def test_a_tasks_own_failure_and_the_panels_command_error_are_never_the_cause_of_a_death():
    from panel.supervision import crashlog
    log = "\n".join([
        LIFE,
        "[t: INFO/MainProcess] Task tests.add[done-1] received",
        "[t: ERROR/ForkPoolWorker-1] Task tests.add[done-1] raised unexpected: KeyError('x')",
        "Traceback (most recent call last):",
        "KeyError: 'x'",
        "[t: INFO/MainProcess] Task tests.sleep[running-1] received",
        "[t: ERROR/MainProcess] pidbox command error: KeyError('panel_detail')",
        "Traceback (most recent call last):",
        "KeyError: 'panel_detail'",
    ])
    died = crashlog.death(log, exit_status=-9)
    assert died.held == (("running-1", "tests.sleep"),) and not died.by_message
    assert "KeyError" not in died.evidence


def test_a_message_waiting_for_its_countdown_is_never_counted_against_a_death(app, tmp_path):
    """The log's last message before the fatal error is the countdown one (as if the poison left no line): its run
    says it waits for its time, so no death is counted against it."""
    from datetime import timedelta

    from models import Run, utcnow
    from panel.supervision import quarantine
    held = "countdown id with spaces"
    log = tmp_path / "worker.log"
    log.write_text("\n".join([LIFE, f"[t: INFO/MainProcess] Task tests.add[{held}] received",
                              "[t: CRITICAL/MainProcess] Unrecoverable error: RecursionError('maximum')",
                              "RecursionError: maximum recursion depth exceeded while pickling an object"]))
    with app.app_context():
        db.session.add(Run(celery_task_id=held, task_name="tests.add", eta=utcnow() + timedelta(seconds=60)))
        db.session.commit()
        assert quarantine.note_death(app.config, app.extensions["celery"], log.read_text()) is None
        assert db.session.query(QuarantinedMessage).count() == 0
        db.session.query(Run).filter_by(celery_task_id=held).update({"eta": None})
        db.session.commit()
        assert quarantine.note_death(app.config, app.extensions["celery"], log.read_text()) is None  # not yet due
        [row] = db.session.query(QuarantinedMessage).all()
        assert (row.celery_task_id, row.deaths) == (held, 1) and "RecursionError" in row.evidence
        db.session.remove()
