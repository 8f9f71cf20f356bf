"""HTML pages: the dashboard, login and logout, the results browser, workers, the audit log."""
import json
from urllib.parse import urlparse

from flask import abort, current_app, g, redirect, render_template, request

from models import iso
from panel.broker import queues, results
from panel.cluster import task_types
from panel.errors import ValidationError
from panel.runlog import progress, retry, runs, search
from panel.runlog.ending import OPEN
from panel.security import audit, devices, lockout, users
from panel.security.auth import login_session, logout_session
from panel.web.contract import parse
from panel.web.schemas.about import AuditQuery
from panel.web.schemas.runs import RunQuery

FAILED_LOGIN = "Wrong username or password."


def dashboard():
    target = current_app.extensions["supervisor"].host.target
    names = sorted(task_types.schedulable(current_app.extensions["celery"]))
    return render_template("index.html", target=target, task_types=names, manager=current_app.config["PROCESS_MANAGER"],
                           default_task="crawl_url" if target.embedded else "")


def _safe_next(target):
    r"""Only same-site relative paths (never an open redirect) a Location header can carry; else the dashboard.

    Browsers drop tabs and line breaks from URLs and read a backslash as a slash, so `/\evil.example` and
    `/<tab>/evil.example` would leave the site; a CR LF would break the header after the login succeeded."""
    target = target if isinstance(target, str) else ""
    if (not target.startswith("/") or target.startswith("//") or "\\" in target or not target.isprintable()
            or urlparse(target).netloc):
        return "/"
    return target


def login():
    next_page = _safe_next((request.args if request.method == "GET" else request.form).get("next"))
    if request.method == "GET":
        return render_template("login.html", next=next_page)
    cfg = current_app.config
    username = (request.form.get("username") or "").strip()[:80]
    source = request.remote_addr or ""
    attempt = lockout.Attempt(username, source, devices.device_of(username))
    refused = lockout.refusal(cfg, attempt)
    if refused:
        audit.record(username, source, audit.LOGIN, attempt.target, "denied", refused.reason)
        page = render_template("login.html", error=refused.message, username=username, next=next_page)
        return page, 429, {"Retry-After": str(refused.retry_after)}
    user = users.authenticate(username, request.form.get("password"))
    if user is None:
        lockout.failed(cfg, attempt, "wrong password, unknown or disabled user")
        return render_template("login.html", error=FAILED_LOGIN, username=username, next=next_page), 401
    login_session(user)
    audit.record(user.username, source, audit.LOGIN, user.username, "success", f"role {user.role}")
    return devices.remember(redirect(next_page), user.username)  # this browser is no stranger from now on


def logout():
    """End this session on the server (a copy of the cookie is dead too), then the cookie."""
    logout_session()
    return redirect("/login")


def audit_page():
    """The audit log, newest first, 100 a page; a filter that does not read is left out, and the page says so."""
    args = {k: v for k, v in request.args.items() if v and k in ("before", "actor", "action")}
    error = None
    try:
        query = parse(AuditQuery, args)
    except ValidationError as exc:
        error, query = f"{exc} (the filter was left out)", AuditQuery()
    events = audit.events(query.limit, query.before, query.actor, query.action)
    return render_template("audit.html", events=events, error=error,
                           next_before=events[-1].id if len(events) == query.limit else None)


def runs_page():
    """The results browser: filters, search, newest first, keyset pages."""
    error = None
    try:
        flt = parse(RunQuery, {k: v for k, v in request.args.items() if v}).to_filter()
    except ValidationError as exc:
        error, flt = str(exc), search.RunFilter()
    rows, next_cursor = search.page(flt)
    return render_template("runs.html", rows=[runs.as_dict(r) for r in rows], flt=flt, error=error,
                           schedules=runs.schedule_names(rows),
                           states=search.STATES, next_args={**flt.as_args(), "cursor": next_cursor} if next_cursor
                           else None, first_page=flt.cursor is None), (400 if error else 200)


def run_page(celery_task_id):
    """One run: arguments, result or traceback, times, worker, retries, the schedule it came from."""
    run = runs.get(celery_task_id)
    if run is None:
        return _run_from_backend(celery_task_id)
    detail = runs.as_dict(run)
    schedule = run.schedule
    celery = current_app.extensions["celery"]
    return render_template("run.html", run=detail, schedule_name=schedule.name if schedule else None,
                           progress=progress.of_run(celery, run),
                           retry_refusal=None if run.status in OPEN else retry.refusal(celery, run))


def _run_from_backend(celery_task_id):
    """A run the run log never saw (events off, or it ended while the panel was away): the result backend's word."""
    try:
        stored = results.stored(current_app.extensions["celery"], celery_task_id)
    except Exception as exc:  # every backend raises its own kind; the page says what
        abort(404, description=f"No run with Celery task id {celery_task_id} in the run log, and the result "
                              f"backend could not be read: {type(exc).__name__}: {exc}")
    if stored is None:
        abort(404, description=f"No run with Celery task id {celery_task_id}.")
    return render_template("run_backend.html", task_id=celery_task_id, stored=stored)


def json_text(value, indent=None):
    """A value as JSON in plain text, for the template to escape where it goes; a recorded repr reads as JSON when
    it is a plain literal (one notation for args: "(0, 123)" is [0, 123]), else it stays as it is.

    Not tojson: its Markup skips the escaping and leaves `"` as is, so inside an attribute a value ends it."""
    if isinstance(value, str):
        converted = queues.literal_json(value, (list, dict))
        if converted is value:
            return value
        value = json.loads(converted)
    return json.dumps(value, ensure_ascii=False, indent=indent, sort_keys=True, default=str)


def progress_text(progress):
    """A running run's progress as a person reads it: `PROGRESS {"done": 3, "total": 10}`."""
    if not progress:
        return "— (its task reports no state of its own)"
    return f"{progress['state']} {json_text(progress['meta'])}"


def template_globals():
    """Who is logged in, whether login is off, and the JSON text and timestamp helpers, for every template."""
    return {"identity": g.get("identity"), "auth_off": current_app.config.get("PANEL_AUTH", "on").lower() == "off",
            "json_text": json_text, "progress_text": progress_text, "iso": iso}


def workers_page():
    return render_template("workers.html")
