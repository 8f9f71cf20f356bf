"""Alerts: a process that stops or goes FATAL, a run Beat missed, too many failures; by webhook and e-mail.

Call inside an app context with the app's config (any mapping): rows go through db.session, which is
committed before a channel is contacted, so no database lock is held while a server is slow.
"""
import json
import logging
import smtplib
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import requests
from sqlalchemy import func, select, text, update

from models import AlertEvent, Run, Schedule, Watchdog, db, iso, utcnow
from panel.database import reader
from panel.host.oscontrol import describe_exit

log = logging.getLogger("panel.alerts")
CHANNELS = ("webhook", "email")
SENT, OFF, RATE_LIMITED, PENDING = "sent", "off", "rate-limited", "pending"
PROCESS_STOPPED, PROCESS_FATAL, BEAT_MISSED, FAILURES, QUARANTINED, TEST = (
    "process_stopped", "process_fatal", "beat_missed", "failures", "message_quarantined", "test")
SUBJECT_MAX = KEY_MAX = 200  # the columns' width
REASON_MAX = 300  # a channel's failure as stored: the server's words, not a page of them
TOP_TASKS = 5
NAME_NOT_KNOWN = "(task not known)"  # failures read back without a task name (no result_extended) still count
PAGE_SIZE_MAX = 500
TLS_MODES = ("", "starttls", "ssl")
clock = utcnow  # the time alerts are stamped and rate-limited by (naive UTC); the tests set their own


class ChannelError(Exception):
    """A channel answered, but not with success."""


def configured(config):
    """Which channels are switched on: a webhook URL, an SMTP host."""
    return {"webhook": bool(config.get("ALERT_WEBHOOK_URL")), "email": bool(config.get("ALERT_SMTP_HOST"))}


def raise_alert(config, kind, key, subject, body, details=None, *, force=False):
    """Record an alert and deliver it on each configured channel, once per key per ALERT_MIN_INTERVAL_S."""
    subject = " ".join(subject.split())[:SUBJECT_MAX]  # one header line, whatever a task's name holds
    key = key[:KEY_MAX]
    event = _record(config, kind, key, subject, body, force)
    todo = [ch for ch, state in event["delivered"].items() if state == PENDING]
    if todo:
        payload = {"kind": kind, "key": key, "subject": subject, "body": body, "details": details or {},
                   "at": event["at"], "host": socket.gethostname()}
        event["delivered"].update(_deliver(config, todo, payload))
        try:
            db.session.execute(update(AlertEvent).where(AlertEvent.id == event["id"])
                               .values(delivered=event["delivered"]))
            db.session.commit()
        except Exception:  # the alert went out; only its record says "pending"
            db.session.rollback()
            log.exception("could not record what the channels did with alert %s", event["id"])
    return event


def _record(config, kind, key, subject, body, force):
    """The rate-limit look and the insert in one short transaction, so two panels cannot both send."""
    try:
        if db.session.get_bind().dialect.name == "postgresql":  # SQLite's BEGIN IMMEDIATE already serialises
            db.session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"panel-alert:{key}"})
        now = clock()  # after the lock: a raise that waited for it sees the row that made it wait
        limited = not force and _attempted_since(key, now - timedelta(seconds=config["ALERT_MIN_INTERVAL_S"]))
        on = configured(config)
        delivered = {ch: (RATE_LIMITED if limited else PENDING) if on[ch] else OFF for ch in CHANNELS}
        row = AlertEvent(at=now, kind=kind, key=key, subject=subject, body=body, delivered=dict(delivered))
        db.session.add(row)
        db.session.flush()
        event = as_dict(row)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    if limited:
        log.info("alert %s rate-limited (sent less than %g s ago): %s", key, config["ALERT_MIN_INTERVAL_S"], subject)
    return event


def _attempted_since(key, since):
    """Was this key sent (or tried) since then? A failed try counts: a broken channel is not hammered."""
    rows = db.session.scalars(select(AlertEvent.delivered).where(AlertEvent.key == key, AlertEvent.at >= since))
    return any(state not in (OFF, RATE_LIMITED) for delivered in rows for state in (delivered or {}).values())


def _deliver(config, todo, payload):
    """Every channel at once, so a slow one costs its own timeout and not the sum of them."""
    with ThreadPoolExecutor(max_workers=len(todo), thread_name_prefix="alert") as pool:
        futures = {ch: pool.submit(_send_safely, ch, config, payload) for ch in todo}
    return {ch: future.result() for ch, future in futures.items()}


def _send_safely(channel, config, payload):
    """'sent' or 'failed: <reason>'; a failing channel is logged, never raised."""
    try:
        SENDERS[channel](config, payload)
    except Exception as exc:
        reason = _reason(channel, config, exc)
        log.warning("alert %s not sent by %s: %s", payload["key"], channel, reason)
        return f"failed: {reason}"[:REASON_MAX]
    log.info("alert %s sent by %s: %s", payload["key"], channel, payload["subject"])
    return SENT


def _reason(channel, config, exc):
    if isinstance(exc, (requests.Timeout, TimeoutError)):
        limit = config["ALERT_WEBHOOK_TIMEOUT_S" if channel == "webhook" else "ALERT_SMTP_TIMEOUT_S"]
        return f"no answer within {limit:g} s"
    if isinstance(exc, (ChannelError, smtplib.SMTPException)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def send_webhook(config, payload):
    """POST the alert as JSON; anything but a 2xx answer is a failure."""
    resp = requests.post(config["ALERT_WEBHOOK_URL"], json=payload, timeout=config["ALERT_WEBHOOK_TIMEOUT_S"],
                         allow_redirects=False, headers={"User-Agent": "celery-panel-alerts"})
    if not 200 <= resp.status_code < 300:
        raise ChannelError(f"HTTP {resp.status_code} from the webhook")


def recipients(config):
    return [addr.strip() for addr in str(config.get("ALERT_EMAIL_TO") or "").split(",") if addr.strip()]


def send_email(config, payload):
    """One message to ALERT_EMAIL_TO through ALERT_SMTP_HOST, with STARTTLS, SSL and login as configured."""
    to, tls = recipients(config), str(config.get("ALERT_SMTP_TLS") or "").lower()
    if not to:
        raise ChannelError("ALERT_EMAIL_TO is empty")
    if tls not in TLS_MODES:
        raise ChannelError(f"ALERT_SMTP_TLS must be empty, starttls or ssl, not {tls!r}")
    context = ssl.create_default_context()
    smtp_class, extra = (smtplib.SMTP_SSL, {"context": context}) if tls == "ssl" else (smtplib.SMTP, {})
    # our host name for EHLO: smtplib's default asks DNS (getfqdn), which can hang on a closed network
    with smtp_class(config["ALERT_SMTP_HOST"], int(config["ALERT_SMTP_PORT"]), local_hostname=payload["host"],
                    timeout=config["ALERT_SMTP_TIMEOUT_S"], **extra) as smtp:
        if tls == "starttls":
            smtp.starttls(context=context)
        if config.get("ALERT_SMTP_USER"):
            smtp.login(config["ALERT_SMTP_USER"], config.get("ALERT_SMTP_PASSWORD") or "")
        refused = smtp.send_message(_message(config, payload, to))
    if refused:
        raise ChannelError(f"the server refused {', '.join(sorted(refused))}")


SENDERS = {"webhook": send_webhook, "email": send_email}


def _message(config, payload, to):
    msg = EmailMessage()
    msg["Subject"] = f"[Celery panel] {payload['subject']}"
    msg["From"] = config.get("ALERT_EMAIL_FROM") or f"celery-panel@{payload['host']}"
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain=payload["host"])  # without a domain it asks DNS
    facts = {"kind": payload["kind"], "key": payload["key"], "host": payload["host"], "at": payload["at"],
             **payload["details"]}
    lines = [f"{k}: {v if isinstance(v, str) else json.dumps(v)}" for k, v in facts.items()]
    msg.set_content(payload["body"] + "\n\n" + "\n".join(lines) + "\n")
    return msg


def _safely(config, kind, key, subject, body, details):
    """raise_alert for the watchdog: a database error is logged, so the watchdog keeps going."""
    try:
        return raise_alert(config, kind, key, subject, body, details)
    except Exception:
        db.session.rollback()
        log.exception("could not raise the alert %s", key)
        return None


def process_stopped(config, program, pids, exit_status, cause):
    """A worker or Beat stopped without being stopped through the panel."""
    how, pid_text = describe_exit(exit_status), ", ".join(str(p) for p in pids) or "unknown"
    return _safely(config, PROCESS_STOPPED, f"process-stopped:{program}",
                   f"Celery {program} stopped unexpectedly ({how})",
                   f"The Celery {program} (PID {pid_text}) stopped without being stopped through the panel: "
                   f"{how}. Cause: {cause}.",
                   {"program": program, "pids": list(pids), "exit_status": exit_status, "cause": cause})


def process_fatal(config, program, reason, failures, by="The watchdog"):
    """The watchdog (or a host's Supervisor) gave up on a program (FATAL): a person has to look."""
    tries = f" after {failures} failure(s)" if failures else ""
    return _safely(config, PROCESS_FATAL, f"process-fatal:{program}", f"Celery {program} is FATAL",
                   f"{by} gave up on the Celery {program}{tries}: {reason}. It stays down until a person starts it.",
                   {"program": program, "reason": reason, "failures": failures})


def message_quarantined(config, task_id, task, queue, deaths, evidence):
    """A message the worker died on again and again was taken out of its queue."""
    return _safely(config, QUARANTINED, f"quarantined:{task_id}", f"Message {task_id} ({task}) quarantined",
                   f"The Celery worker died {deaths} times holding message {task_id} ({task}, queue {queue}): "
                   f"{evidence}. It was taken out of the queue and the worker started again; read, delete or "
                   f"requeue it on the workers page.",
                   {"task_id": task_id, "task": task, "queue": queue, "deaths": deaths, "evidence": evidence})


def send_test(config):
    """A test alert through every configured channel, past the rate limit."""
    return raise_alert(config, TEST, TEST, "Test alert from the Celery panel",
                       "This is a test alert sent from the Celery panel. If you read this, the channel works.",
                       {"channels": [ch for ch, on in configured(config).items() if on]}, force=True)


def run_checks(config, now=None):
    """The watchdog's periodic look (every ~10 s): missed Beat runs, failures over the threshold."""
    now = now or clock()
    raised = []
    for check in (check_beat_missed, check_failures):
        try:
            raised += [alert for alert in check(config, now) if alert]
        except Exception:
            db.session.rollback()
            log.exception("alert check %s failed", check.__name__)
    return raised


def check_beat_missed(config, now):
    """An enabled task more than the margin past its next run was not sent by Beat: one alert per miss."""
    cutoff = now - timedelta(seconds=config["ALERT_BEAT_MISS_MARGIN_S"])
    tasks = Schedule.__table__
    with reader(db.engine).connect() as conn:  # deferred reads: the check never waits for a writer
        if Watchdog.meant_stopped(conn, "beat"):
            return []  # a person stopped Beat through the panel: the schedule is meant to wait
        overdue = conn.execute(select(tasks.c.id, tasks.c.name, tasks.c.task, tasks.c.next_run_at).where(
            tasks.c.enabled.is_(True), tasks.c.next_run_at < cutoff).order_by(tasks.c.next_run_at)).all()
        keys = {f"beat-missed:{row.id}:{row.next_run_at.isoformat()}": row for row in overdue}
        seen = set(conn.execute(select(AlertEvent.key).where(AlertEvent.key.in_(list(keys)))).scalars()
                   ) if keys else set()
    return [_beat_missed(config, key, row, now) for key, row in keys.items() if key not in seen]


def _beat_missed(config, key, row, now):
    late_s = (now - row.next_run_at).total_seconds()
    return _safely(config, BEAT_MISSED, key, f"Beat missed a run of {row.name!r} ({span(late_s)} late)",
                   f"The scheduled task {row.name!r} (id {row.id}, task {row.task}) was due at "
                   f"{row.next_run_at:%Y-%m-%d %H:%M:%S} UTC and Beat has not sent it {span(late_s)} later "
                   f"(margin {span(config['ALERT_BEAT_MISS_MARGIN_S'])}). Is Beat running?",
                   {"task_id": row.id, "name": row.name, "task": row.task,
                    "next_run_at": iso(row.next_run_at), "late_s": round(late_s, 1)})


def check_failures(config, now):
    """Failed runs finished within the window at or above the threshold: one alert (key "failures")."""
    threshold, window_s = config["ALERT_FAILURES_THRESHOLD"], config["ALERT_FAILURES_WINDOW_S"]
    if threshold <= 0:
        return []
    with reader(db.engine).connect() as conn:
        recent = conn.execute(select(AlertEvent.id).where(
            AlertEvent.key == FAILURES, AlertEvent.at >= now - timedelta(seconds=config["ALERT_MIN_INTERVAL_S"]))
            .limit(1)).first()
        if recent:  # raised lately: looking again every 10 s would only add rate-limited rows
            return []
        counts = conn.execute(select(Run.task_name, func.count()).where(
            Run.state == "FAILURE", Run.finished_at >= now - timedelta(seconds=window_s))
            .group_by(Run.task_name)).all()
    total = sum(n for _, n in counts)
    if total < threshold:
        return []
    top = sorted(((name or NAME_NOT_KNOWN, n) for name, n in counts), key=lambda c: (-c[1], c[0]))[:TOP_TASKS]
    listing = "\n".join(f"  {name}: {n}" for name, n in top)
    alert = _safely(config, FAILURES, FAILURES, f"{total} failed runs in the last {span(window_s)}",
                    f"{total} runs failed in the last {span(window_s)} (threshold {threshold}). "
                    f"Most failures:\n{listing}",
                    {"count": total, "threshold": threshold, "window_s": window_s,
                     "top_tasks": [{"task": name, "count": n} for name, n in top]})
    return [alert]


def span(seconds):
    """Seconds in words a person reads at a glance: '45 s', '10 min', '2.5 h'."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def events(limit=100, before_id=None):
    """Newest first, keyset-paged by id."""
    query = select(AlertEvent).order_by(AlertEvent.id.desc()).limit(min(max(limit, 1), PAGE_SIZE_MAX))
    if before_id:
        query = query.where(AlertEvent.id < before_id)
    return db.session.scalars(query).all()


def as_dict(event):
    return {"id": event.id, "at": iso(event.at), "kind": event.kind, "key": event.key,
            "subject": event.subject, "body": event.body, "delivered": dict(event.delivered or {})}
