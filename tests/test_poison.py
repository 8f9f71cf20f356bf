"""A poison message: a real worker that dies on one message again and again is not lost to it.

The message is sent through the broker directly (Celery's client, past every limit of the panel's API); the
worker's main process dies pickling it for the pool; the panel's watchdog finds it in the worker's log and
the broker, takes it out of the queue into the quarantine, alerts, and starts the worker, which runs the next.
"""
import base64
import json

from playwright.sync_api import expect

from models import QUARANTINED, AlertEvent, QuarantinedMessage, Run, db
from panel.broker import messages
from panel.host.processes import WORKER
from panel.host.supervisor import tail
from panel.supervision import crashlog, quarantine
from tests.helpers import ARTIFACTS, FAULTS, api_client, run_row, start_worker, wait_for

# Pickle spends two of Python's 1,000 recursion levels on each list level, JSON one: 520 levels can never be
# pickled for the pool, from any stack, yet the sender encodes and the worker decodes them. At 480 it rode on the
# worker's stack depth: 470 pickled, and in one full run the worker took a 480-deep poison and never died.
DEPTH = 520


def nested(depth):
    value = "x"
    for _ in range(depth):
        value = [value]
    return value


def kept(app):
    with app.app_context():
        try:
            return quarantine.kept()
        finally:
            db.session.remove()


def test_a_message_the_worker_dies_on_is_quarantined_and_the_worker_runs_the_next(guarded):
    app = guarded
    celery = app.extensions["celery"]
    first_pid = start_worker(app)
    poison = celery.send_task("crawl_url", kwargs={"url": nested(DEPTH)})
    after = celery.send_task("tests.add", args=(2, 3))
    [row] = wait_for(lambda: kept(app), 120, lambda: f"the poison message in the quarantine; its run "
                     f"{getattr(run_row(app, poison.id), 'status', None)}; the worker's log ends:\n"
                     f"{tail(app.extensions['supervisor'].log_path(WORKER))}")
    assert row.celery_task_id == poison.id and row.deaths >= 2 and "RecursionError" in row.evidence
    with app.app_context():  # it is out of the broker: a second take finds nothing
        assert messages.take(celery, poison.id, quarantine.search_queues(app.config, celery)) is None
    done = wait_for(lambda: (r := run_row(app, after.id)) and r.status == "completed" and r, 60,
                    "the next message to run on the restarted worker")
    assert json.loads(done.result) == 5 and done.worker
    live = app.extensions["supervisor"].host.scan()[WORKER]
    assert live and live[0].pid != first_pid  # a new worker, started by the watchdog, runs
    with app.app_context():
        alert = db.session.query(AlertEvent).filter_by(kind="message_quarantined").one()
        assert poison.id in alert.subject and poison.id in alert.body and "RecursionError" in alert.body
        run = db.session.query(Run).filter_by(celery_task_id=poison.id).one()  # recorded when it was sent
        assert (run.status, run.started_at) == ("failed", None) and run.error.startswith("Quarantined"), \
            (run.status, run.started_at, run.error)
    viewer = api_client(app, "viewer")
    listed = viewer.get("/api/quarantine").get_json()["messages"]
    assert [m["celery_task_id"] for m in listed] == [poison.id] and listed[0]["queue"] == "celery"
    shown = viewer.get(f"/api/quarantine/{poison.id}").get_json()
    assert shown["headers"]["task"] == "crawl_url" and shown["kwargs"].startswith('{"url": [[[[')
    assert len(shown["kwargs"]) <= quarantine.SHOWN_MAX + 40
    operator = api_client(app, "operator")
    assert operator.delete(f"/api/quarantine/{poison.id}").status_code == 200
    assert viewer.get("/api/quarantine").get_json()["messages"] == []
    assert viewer.get(f"/api/quarantine/{poison.id}").status_code == 404
    broker = app.config["CELERY_BROKER_URL"].split(":", 1)[0]
    FAULTS.append((f"a message the worker dies on ({broker}: RecursionError pickling a {DEPTH}-deep kwarg), "
                   "watchdog on", f"quarantined after {row.deaths} deaths, its run failed, an alert named it; the "
                   "worker was started again and ran the next message (5)"))


def keep(app, celery_task_id):
    """Take a waiting message out of the broker into the quarantine, as the watchdog does after two deaths."""
    celery = app.extensions["celery"]
    with app.app_context():
        envelope = messages.take(celery, celery_task_id, ["celery"])
        assert envelope is not None and envelope.task_id == celery_task_id
        db.session.add(QuarantinedMessage(
            celery_task_id=celery_task_id, task_name=envelope.headers["task"], queue=envelope.queue,
            state=QUARANTINED, deaths=2, evidence="RecursionError: test", envelope=envelope.as_dict(),
            quarantined_at=quarantine.utcnow()))
        db.session.commit()
        db.session.remove()
    return envelope


def test_a_requeued_message_goes_back_to_its_queue_as_it_was(broker_app):
    """Requeue publishes the kept bytes and headers again; the run is queued again (no worker: it waits)."""
    app = broker_app
    celery = app.extensions["celery"]
    sent = celery.send_task("tests.add", args=(20, 22))
    envelope = keep(app, sent.id)
    assert api_client(app, "viewer").get(f"/api/quarantine/{sent.id}").get_json()["args"] == "[20, 22]"
    answer = api_client(app, "operator").post(f"/api/quarantine/{sent.id}/requeue")
    assert answer.status_code == 200, answer.get_json()
    with app.app_context():
        back = messages.take(celery, sent.id, ["celery"])  # it waits in its queue again, the same message
        assert back is not None and back.body_b64 == envelope.body_b64 and back.headers == envelope.headers
        assert quarantine.kept() == []


def test_the_workers_page_shows_the_quarantine_and_requeues_from_it(make_app, logged_in):
    app = make_app()
    sent = app.extensions["celery"].send_task("tests.add", args=(["<b>bold</b>", 1], 2))
    keep(app, sent.id)
    page = logged_in(app, "op", "operator", "/workers")
    row = page.locator(f"#quarantine-body tr[data-message='{sent.id}']")
    expect(row).to_contain_text("tests.add", timeout=20_000)
    expect(row).to_contain_text("RecursionError: test")
    row.get_by_role("button", name=f"Read message {sent.id}").click()
    expect(page.locator("#quarantine-facts")).to_contain_text('[["<b>bold</b>", 1], 2]', timeout=20_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "quarantine.png"), full_page=True)
    row.get_by_role("button", name=f"Requeue message {sent.id}").click()
    expect(page.locator("#outcome")).to_contain_text(f"Message {sent.id} (tests.add) requeued to celery",
                                                     timeout=20_000)
    expect(page.locator("#quarantine-body")).to_have_text("Nothing in quarantine.", timeout=20_000)
    assert page.dialogs and "back in its queue" in page.dialogs[-1][1] and page.errors == []
    with app.app_context():
        assert messages.take(app.extensions["celery"], sent.id, ["celery"]) is not None


def test_a_message_a_dead_consumer_left_unacknowledged_on_redis_is_taken_from_that_set(make_app):
    """A worker SIGKILLed holding a message leaves it in kombu's unacked hash (until the visibility timeout)."""
    import redis
    from kombu import Connection
    app = make_app()
    celery, url = app.extensions["celery"], app.config["CELERY_BROKER_URL"]
    sent = celery.send_task("tests.add", args=(1, 2))
    with Connection(url) as conn:
        channel = conn.channel()
        assert channel.basic_get("celery", no_ack=False) is not None  # delivered, never acknowledged
        raw = redis.Redis.from_url(url)
        assert raw.hlen("unacked") == 1 and raw.llen("celery") == 0
        with app.app_context():
            envelope = messages.take(celery, sent.id, quarantine.search_queues(app.config, celery))
        assert envelope is not None and envelope.task_id == sent.id and envelope.queue == "celery"
        assert raw.hlen("unacked") == 0 and raw.zcard("unacked_index") == 0
        channel.close()  # its restore finds nothing left to put back
        assert raw.llen("celery") == 0


def test_the_crash_log_names_what_the_last_worker_held_and_the_message_it_died_handling():
    log = "\n".join([
        "[2026-11-30 15:14:50,000: INFO/MainProcess] Connected to redis://127.0.0.1:1/0",
        "[2026-11-30 15:14:51,000: INFO/MainProcess] Task crawl_url[old-1] received",
        "[2026-11-30 15:14:52,000: INFO/MainProcess] Unrecoverable error: earlier life",
        " -------------- worker@vm v5.7.0 (collider)",
        "[2026-11-30 15:14:55,757: INFO/MainProcess] Connected to redis://127.0.0.1:1/0",
        "[2026-11-30 15:14:56,000: INFO/MainProcess] Task tests.sleep[long-1] received",
        "[2026-11-30 15:14:56,500: INFO/MainProcess] Task tests.add[done-1] received",
        "[2026-11-30 15:14:56,600: INFO/ForkPoolWorker-1] Task tests.add[done-1] succeeded in 0.01s: 5",
        "[2026-11-30 15:14:57,871: INFO/MainProcess] Task crawl_url[poison-1] received",
        "[2026-11-30 15:14:57,878: CRITICAL/MainProcess] Unrecoverable error: RecursionError('maximum')",
        "Traceback (most recent call last):",
        "  File \"x.py\", line 1, in f",
        "RecursionError: maximum recursion depth exceeded while pickling an object",
        "[2026-11-30 15:14:58,000: INFO/MainProcess] Task tests.add[after-1] received",
    ])
    died = crashlog.death(log)  # the newest life only; what succeeded is not held
    assert died.held == (("long-1", "tests.sleep"), ("poison-1", "crawl_url"),
                         ("after-1", "tests.add"))
    assert died.by_message, "the main process gave up"
    assert died.evidence == "RecursionError: maximum recursion depth exceeded while pickling an object"
    assert crashlog.death("[x: INFO/MainProcess] Connected to redis://\nnothing else") is None


def test_a_message_body_survives_the_round_trip_through_the_quarantine_record():
    envelope = messages.Envelope("celery", base64.b64encode(b'[[1], {}, {}]').decode(), "application/json",
                                 "utf-8", {"id": "x", "task": "t"}, {"priority": 0})
    assert messages.Envelope(**json.loads(json.dumps(envelope.as_dict()))) == envelope
