"""Alerts delivered to a local HTTP receiver and a local SMTP server: content, rate limits, failures, checks, API."""
import socket
import threading
import uuid
from datetime import datetime, timedelta

import pytest
from aiosmtpd.smtp import AuthResult

from models import AlertEvent, Run, Schedule, Watchdog, db, utcnow
from panel.health import alerts
from panel.host.oscontrol import describe_exit
from tests.alert_receivers import Receiver, smtp_server
from tests.helpers import api_client, free_port

TIMEOUT_S = 0.5  # the webhook and SMTP timeouts in these tests


@pytest.fixture
def hook():
    receiver = Receiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def smtp():
    inbox = smtp_server()
    yield inbox
    inbox.controller.stop()


@pytest.fixture
def smtp_with_login():
    """A server that takes AUTH PLAIN without TLS (loopback, test only) and accepts one user."""
    def check(server, session, envelope, mechanism, auth_data):
        ok = (auth_data.login, auth_data.password) == (b"alerts", b"s3cret")
        return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 535 itself
    inbox = smtp_server(authenticator=check, auth_require_tls=False, auth_required=True)
    yield inbox
    inbox.controller.stop()


def alert_app(make_app, backend="sqlite", hook_url="", smtp_port=None, **extra):
    """An app whose alerts go to the given receivers, with short timeouts."""
    config = {"ALERT_WEBHOOK_URL": hook_url, "ALERT_WEBHOOK_TIMEOUT_S": TIMEOUT_S,
              "ALERT_SMTP_HOST": "127.0.0.1" if smtp_port else "", "ALERT_SMTP_PORT": smtp_port or 25,
              "ALERT_SMTP_TIMEOUT_S": TIMEOUT_S, "ALERT_EMAIL_FROM": "panel@example.test",
              "ALERT_EMAIL_TO": "ops@example.test, oncall@example.test"}
    config.update(extra)
    return make_app(backend, **config)


def call(app, fn, *args, **kwargs):
    """Run a service function inside the app's context, as the watchdog does."""
    with app.app_context():
        try:
            return fn(app.config, *args, **kwargs)
        finally:
            db.session.remove()


def rows(app):
    """(kind, key, delivered) of every recorded alert, oldest first."""
    return call(app, lambda _: [(r.kind, r.key, r.delivered) for r in db.session.query(AlertEvent).order_by("id")])


def add(app, *objects):
    with app.app_context():
        db.session.add_all(objects)
        db.session.commit()
        ids = [getattr(o, "id", None) for o in objects]
        db.session.remove()
    return ids


def failed_run(task_name, finished_at):
    return Run(celery_task_id=str(uuid.uuid4()), task_name=task_name, state="FAILURE", status="failed",
                   queued_at=finished_at, finished_at=finished_at)


def _stopped(app, now):
    return [call(app, alerts.process_stopped, "worker", [4242, 4243], -9, "unexpected exit")]


def _fatal(app, now):
    return [call(app, alerts.process_fatal, "beat", "could not start it 3 times: broker unreachable", 3)]


def _missed(app, now):
    add(app, Schedule(name="nightly crawl", task="crawl_url", interval_seconds=60, enabled=True,
                           next_run_at=now - timedelta(seconds=300)))
    return call(app, alerts.check_beat_missed, now)


def _failures(app, now):
    add(app, *[failed_run("crawl_url", now - timedelta(seconds=30)) for _ in range(7)],
        *[failed_run("tests.add", now - timedelta(seconds=30)) for _ in range(3)])
    return call(app, alerts.check_failures, now)


KINDS = {
    "process_stopped": (_stopped, "process-stopped:worker", ["worker", "killed by SIGKILL"],
                        {"program": "worker", "pids": [4242, 4243], "exit_status": -9}),
    "process_fatal": (_fatal, "process-fatal:beat", ["beat", "FATAL"],
                      {"program": "beat", "failures": 3, "reason": "could not start it 3 times: broker unreachable"}),
    "beat_missed": (_missed, None, ["nightly crawl", "5 min late"], {"name": "nightly crawl", "late_s": 300.0}),
    "failures": (_failures, "failures", ["10 failed runs", "10 min"],
                 {"count": 10, "threshold": 10, "top_tasks": [{"task": "crawl_url", "count": 7},
                                                              {"task": "tests.add", "count": 3}]}),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_alert_kind_reaches_the_webhook_and_the_mailbox_with_its_content(make_app, hook, smtp, kind):
    app = alert_app(make_app, hook_url=hook.url("/ok"), smtp_port=smtp.port)
    trigger, key, words, details = KINDS[kind]
    now = utcnow()
    [event] = trigger(app, now)
    assert event["kind"] == kind and event["delivered"] == {"webhook": "sent", "email": "sent"}
    assert rows(app) == [(kind, event["key"], {"webhook": "sent", "email": "sent"})]
    assert key is None or event["key"] == key
    [(path, payload, content_type)] = hook.posts
    assert content_type == "application/json"
    assert set(payload) == {"kind", "key", "subject", "body", "details", "at", "host"}
    assert payload["kind"] == kind and payload["key"] == event["key"] and payload["host"] == socket.gethostname()
    assert all(w in payload["subject"] for w in words), payload["subject"]
    assert details.items() <= payload["details"].items()
    assert abs(datetime.fromisoformat(payload["at"].rstrip("Z")) - now) < timedelta(seconds=30)
    [message] = smtp.messages
    assert message["Subject"] == f"[Celery panel] {payload['subject']}"
    assert message["From"] == "panel@example.test"
    assert sorted(smtp.envelopes[0].rcpt_tos) == ["oncall@example.test", "ops@example.test"]
    text = message.get_content().replace("\r\n", "\n")  # SMTP carries CRLF lines
    assert payload["body"] in text and f"key: {event['key']}" in text


def test_the_same_key_within_the_interval_is_recorded_rate_limited_and_sent_again_after_it(make_app, backend, hook,
                                                                                             smtp, monkeypatch):
    app = alert_app(make_app, backend, hook_url=hook.url("/ok"), smtp_port=smtp.port, ALERT_MIN_INTERVAL_S=600)
    start, elapsed = utcnow(), [0]  # the alerts' clock, moved by hand: no real ten minutes, no real second
    monkeypatch.setattr(alerts, "clock", lambda: start + timedelta(seconds=elapsed[0]))
    first = call(app, alerts.process_stopped, "beat", [11], 1, "unexpected exit")
    elapsed[0] = 599  # the last second of the interval
    second = call(app, alerts.process_stopped, "beat", [12], 1, "unexpected exit")
    other = call(app, alerts.process_stopped, "worker", [13], 1, "unexpected exit")  # another key is not limited
    assert first["delivered"] == {"webhook": "sent", "email": "sent"}
    assert second["delivered"] == {"webhook": "rate-limited", "email": "rate-limited"}
    assert other["delivered"] == {"webhook": "sent", "email": "sent"}
    assert [p["details"]["pids"] for _, p, _ in hook.posts] == [[11], [13]] and len(smtp.envelopes) == 2
    elapsed[0] = 601  # past the interval since the first (the rate-limited one is not a send: it does not count)
    third = call(app, alerts.process_stopped, "beat", [14], 1, "unexpected exit")
    assert third["delivered"] == {"webhook": "sent", "email": "sent"}
    assert [p["details"]["pids"] for _, p, _ in hook.posts] == [[11], [13], [14]] and len(smtp.envelopes) == 3
    assert [r[2]["webhook"] for r in rows(app)] == ["sent", "rate-limited", "sent", "sent"]


def test_concurrent_raises_of_one_key_are_sent_once(make_app, backend, hook):
    # Each thread has its own app context, session and connection: as two panel processes would.
    app = alert_app(make_app, backend, hook_url=hook.url("/ok"))
    results, start = [], threading.Barrier(4)

    def raise_one(n):
        start.wait(timeout=10)
        results.append(call(app, alerts.raise_alert, "process_stopped", "same-key", f"try {n}", "body"))
    threads = [threading.Thread(target=raise_one, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(r["delivered"]["webhook"] for r in results) == ["rate-limited"] * 3 + ["sent"]
    assert len(hook.posts) == 1


def test_a_webhook_answering_500_is_recorded_failed_and_the_mail_still_goes(make_app, hook, smtp):
    app = alert_app(make_app, hook_url=hook.url("/fail"), smtp_port=smtp.port)
    event = call(app, alerts.process_fatal, "worker", "gave up", 3)
    assert event["delivered"] == {"webhook": "failed: HTTP 500 from the webhook", "email": "sent"}
    assert rows(app)[0][2] == event["delivered"] and len(hook.posts) == 1 and len(smtp.envelopes) == 1


def test_a_webhook_that_never_answers_times_out_and_the_mail_still_goes(make_app, hook, smtp):
    app = alert_app(make_app, hook_url=hook.url("/hang"), smtp_port=smtp.port)
    event = call(app, alerts.process_fatal, "worker", "gave up", 3)
    # The words come from the timeout, not from the server closing at last: the caller gave up in time.
    assert event["delivered"] == {"webhook": f"failed: no answer within {TIMEOUT_S:g} s", "email": "sent"}
    assert not hook.server.release.is_set(), "the webhook's handler let go before the caller did"
    assert rows(app)[0][2] == event["delivered"] and len(smtp.envelopes) == 1


def test_an_unreachable_smtp_server_is_recorded_failed_and_the_webhook_still_gets_it(make_app, hook):
    app = alert_app(make_app, hook_url=hook.url("/ok"), smtp_port=free_port())  # nothing listens there
    event = call(app, alerts.process_stopped, "worker", [7], 0, "unexpected exit")
    assert event["delivered"]["webhook"] == "sent" and len(hook.posts) == 1
    assert event["delivered"]["email"].startswith("failed: ConnectionRefusedError")
    assert rows(app)[0][2] == event["delivered"]


def test_starttls_asked_of_a_server_without_it_fails_rather_than_sending_in_clear(make_app, smtp):
    app = alert_app(make_app, smtp_port=smtp.port, ALERT_SMTP_TLS="starttls")
    event = call(app, alerts.process_fatal, "beat", "gave up", 3)
    assert event["delivered"]["email"].startswith("failed:") and "STARTTLS" in event["delivered"]["email"]
    assert smtp.envelopes == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # loopback test server
def test_the_mail_logs_in_with_the_configured_user(make_app, smtp_with_login):
    port = smtp_with_login.port
    good = alert_app(make_app, smtp_port=port, ALERT_SMTP_USER="alerts", ALERT_SMTP_PASSWORD="s3cret")
    assert call(good, alerts.process_fatal, "beat", "gave up", 3)["delivered"]["email"] == "sent"
    bad = alert_app(make_app, smtp_port=port, ALERT_SMTP_USER="alerts", ALERT_SMTP_PASSWORD="wrong")
    assert call(bad, alerts.process_fatal, "beat", "gave up", 3)["delivered"]["email"].startswith("failed: (535")
    assert len(smtp_with_login.envelopes) == 1


def test_channels_are_off_when_unconfigured_and_the_alert_is_still_recorded(make_app):
    app = make_app()
    event = call(app, alerts.process_stopped, "worker", [5], None, "unexpected exit")
    assert event["delivered"] == {"webhook": "off", "email": "off"}
    assert "exit status unknown" in event["subject"]
    assert rows(app) == [("process_stopped", "process-stopped:worker", {"webhook": "off", "email": "off"})]


def test_an_smtp_host_without_recipients_is_a_failure_not_silence(make_app, smtp):
    app = alert_app(make_app, smtp_port=smtp.port, ALERT_EMAIL_TO=" , ")
    event = call(app, alerts.process_fatal, "beat", "gave up", 3)
    assert event["delivered"] == {"webhook": "off", "email": "failed: ALERT_EMAIL_TO is empty"}


@pytest.mark.parametrize("status, words", [(-9, "killed by SIGKILL"), (-15, "killed by SIGTERM"),
                                           (1, "exit status 1"), (0, "exit status 0"),
                                           (None, "exit status unknown"), (-200, "killed by signal 200")])
def test_exit_status_in_words(status, words):
    assert describe_exit(status).startswith(words)


def test_beat_missed_fires_past_the_margin_not_within_it_and_once_per_miss(make_app, backend, hook):
    app = alert_app(make_app, backend, hook_url=hook.url("/ok"))
    now = utcnow().replace(microsecond=0)
    tasks = [("late", True, now - timedelta(seconds=121)), ("fresh", True, now - timedelta(seconds=119)),
             ("disabled", False, now - timedelta(hours=3)), ("never loaded", True, None)]
    late, fresh, _, _ = add(app, *[Schedule(name=name, task="crawl_url", interval_seconds=60, enabled=enabled,
                                                 next_run_at=due) for name, enabled, due in tasks])
    [event] = call(app, alerts.check_beat_missed, now)
    assert event["key"] == f"beat-missed:{late}:{(now - timedelta(seconds=121)).isoformat()}"
    assert hook.posts[0][1]["details"]["task_id"] == late
    assert call(app, alerts.check_beat_missed, now) == [], "the same miss alerted again"
    with app.app_context():  # Beat sent it and moved on, then missed the next one
        db.session.get(Schedule, late).next_run_at = now + timedelta(seconds=60)
        db.session.commit()
        db.session.remove()
    later = call(app, alerts.check_beat_missed, now + timedelta(seconds=200))  # "fresh" is past the margin now too
    assert sorted(e["key"] for e in later) == sorted([
        f"beat-missed:{late}:{(now + timedelta(seconds=60)).isoformat()}",
        f"beat-missed:{fresh}:{(now - timedelta(seconds=119)).isoformat()}"])
    # the disabled task and the one Beat never loaded (no next_run_at) never alert
    assert sorted(p["details"]["task_id"] for _, p, _ in hook.posts) == sorted([late, late, fresh])


def test_beat_missed_is_quiet_while_beat_was_stopped_through_the_panel(make_app):
    app = make_app()
    now = utcnow()
    add(app, Schedule(name="late", task="crawl_url", interval_seconds=60, next_run_at=now - timedelta(hours=1)),
        Watchdog(program="beat", enabled=False, desired="stopped"))
    assert call(app, alerts.check_beat_missed, now) == []
    assert rows(app) == []


def test_failures_alert_fires_at_the_threshold_not_below_and_not_again_within_the_interval(make_app, backend, hook):
    app = alert_app(make_app, backend, hook_url=hook.url("/ok"), ALERT_FAILURES_THRESHOLD=3,
                    ALERT_FAILURES_WINDOW_S=600)
    now = utcnow()
    add(app, failed_run("a", now - timedelta(seconds=10)), failed_run("b", now - timedelta(seconds=500)),
        *[failed_run("old", now - timedelta(seconds=700)) for _ in range(5)],  # outside the window
        Run(celery_task_id="ok-1", task_name="a", state="SUCCESS", status="completed", finished_at=now))
    assert call(app, alerts.check_failures, now) == [], "2 failures in the window are below a threshold of 3"
    add(app, failed_run("a", now - timedelta(seconds=5)))
    [event] = call(app, alerts.check_failures, now)
    assert event["key"] == "failures" and event["delivered"]["webhook"] == "sent"
    details = hook.posts[0][1]["details"]
    assert details["count"] == 3 and details["top_tasks"] == [{"task": "a", "count": 2}, {"task": "b", "count": 1}]
    assert call(app, alerts.check_failures, now + timedelta(seconds=10)) == []
    assert len(rows(app)) == 1 and len(hook.posts) == 1


def test_run_checks_goes_on_when_one_check_breaks(make_app, monkeypatch):
    app = alert_app(make_app, ALERT_FAILURES_THRESHOLD=1)
    add(app, failed_run("a", utcnow()))

    def broken(config, now):
        raise RuntimeError("boom")
    monkeypatch.setattr(alerts, "check_beat_missed", broken)
    [event] = call(app, alerts.run_checks)
    assert event["kind"] == "failures"


def test_alert_list_pages_newest_first_with_before(make_app):
    app = make_app()
    for n in range(7):
        call(app, alerts.raise_alert, "test", f"k{n}", f"alert {n}", "body")
    client = api_client(app, "viewer")
    seen, before = [], None
    for _ in range(10):
        page = client.get("/api/alerts?limit=3" + (f"&before={before}" if before else "")).get_json()
        seen += [a["subject"] for a in page["alerts"]]
        before = page["next_before"]
        if before is None:
            break
    assert seen == [f"alert {n}" for n in reversed(range(7))]
    first = client.get("/api/alerts").get_json()["alerts"][0]
    assert first["delivered"] == {"webhook": "off", "email": "off"} and first["at"].endswith("Z")
    for bad in ("limit=0", "limit=501", "limit=x", "before=0", f"before={2**70}"):
        resp = client.get("/api/alerts?" + bad)
        assert resp.status_code == 400 and resp.get_json()["field"] == bad.split("=")[0], bad


def test_test_alert_is_admin_only_and_reports_each_channel_past_the_rate_limit(make_app, hook, smtp):
    app = alert_app(make_app, hook_url=hook.url("/ok"), smtp_port=smtp.port)
    for role in ("viewer", "operator"):
        assert api_client(app, role).post("/api/alerts/test").status_code == 403
    assert hook.posts == []
    admin = api_client(app, "admin")
    for _ in range(2):  # twice in a row: a test is never rate-limited
        resp = admin.post("/api/alerts/test")
        body = resp.get_json()
        assert resp.status_code == 200 and body["status"] == "success"
        assert body["delivered"] == {"webhook": "sent", "email": "sent"}
        assert body["message"] == "webhook: sent; email: sent"
    assert len(hook.posts) == 2 and len(smtp.envelopes) == 2
    assert hook.posts[0][1]["kind"] == "test"


def test_test_alert_reports_a_failing_channel(make_app, hook):
    app = alert_app(make_app, hook_url=hook.url("/fail"))
    body = api_client(app).post("/api/alerts/test").get_json()
    assert body["status"] == "error" and body["delivered"] == {"webhook": "failed: HTTP 500 from the webhook",
                                                               "email": "off"}
    assert body["message"] == "webhook: failed: HTTP 500 from the webhook"


def test_test_alert_without_any_channel_is_409(make_app):
    resp = api_client(make_app()).post("/api/alerts/test")
    assert resp.status_code == 409 and "no alert channel is configured" in resp.get_json()["message"]


@pytest.fixture
def acting(make_app):
    """Apps whose background duties (watchdog, alert checks) run as in the panel; stopped at teardown."""
    from panel import background
    handles = []

    def factory(**config):
        app = make_app(WATCHDOG_INTERVAL_S=0.3, ALERT_CHECK_INTERVAL_S=0.5, **config)
        handles.append(background.start(app))
        return app
    yield factory
    for handle in handles:
        handle.stop()


def webhook_kinds(hook):
    return [body["kind"] for _, body, _ in hook.posts]


def test_a_real_beat_that_stops_sending_is_alerted_end_to_end(acting, hook):
    """Beat runs but is frozen (SIGSTOP): it is in the process table, yet sends nothing; the alert says so."""
    import os
    import signal

    from tests.helpers import wait_for
    app = acting(ALERT_WEBHOOK_URL=hook.url("/ok"), ALERT_BEAT_MISS_MARGIN_S=1)
    with app.app_context():
        db.session.add(Schedule(name="every 2 s", task="tests.add", args=[1, 1], kwargs={}, interval_seconds=2))
        db.session.commit()
        db.session.remove()
    result = app.extensions["supervisor"].start(("beat",))["beat"]
    assert result.ok, result.log_tail
    wait_for(lambda: run_count(app) >= 1, 20, "Beat to send the schedule once")
    os.kill(result.pids[0], signal.SIGSTOP)
    try:
        wait_for(lambda: "beat_missed" in webhook_kinds(hook), 30, "the missed-run alert at the webhook")
    finally:
        os.kill(result.pids[0], signal.SIGCONT)
    body = next(b for _, b, _ in hook.posts if b["kind"] == "beat_missed")
    assert body["details"]["name"] == "every 2 s" and body["details"]["late_s"] >= 1


def test_a_real_burst_of_failed_runs_is_alerted_end_to_end(acting, hook):
    from tests.helpers import start_worker, wait_for
    app = acting(ALERT_WEBHOOK_URL=hook.url("/ok"), ALERT_FAILURES_THRESHOLD=3, ALERT_FAILURES_WINDOW_S=600)
    start_worker(app)
    sent = [app.extensions["celery"].send_task("tests.add", args=["a", n]) for n in range(3)]  # TypeError each
    wait_for(lambda: all(s.ready() for s in sent), 30, "three runs to fail on the worker")
    wait_for(lambda: "failures" in webhook_kinds(hook), 30, "the failure-burst alert at the webhook")
    body = next(b for _, b, _ in hook.posts if b["kind"] == "failures")
    assert body["details"]["count"] >= 3 and body["details"]["top_tasks"][0]["task"] == "tests.add"


def run_count(app):
    with app.app_context():
        try:
            return db.session.query(Run).count()
        finally:
            db.session.remove()
