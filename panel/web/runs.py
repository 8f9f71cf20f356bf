"""Runs (one execution each): the results browser's list, export and figures, deletion, cancel, stopping retries."""
import logging
from datetime import timedelta

from flask import Response, current_app, jsonify, request

from models import db, utcnow
from panel.database import reader
from panel.errors import NotFound, ValidationError
from panel.runlog import cancel, export, operations, retention, runs, search, stats
from panel.web.request_args import json_object

log = logging.getLogger("panel.results")
EXPORT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}
LIST_OMITS = ("traceback",)  # the list stays light; a run's detail has everything


def celery():
    return current_app.extensions["celery"]


def listed(row):
    record = runs.as_dict(row)
    for key in LIST_OMITS:
        record.pop(key)
    return record


def list_runs():
    """Every run, newest first: task, status, worker, since, until, q filters; `cursor` for the next page."""
    flt = search.from_args(request.args)
    rows, next_cursor = search.page(flt)
    return jsonify({"runs": [listed(r) for r in rows], "next_cursor": next_cursor, "filter": flt.as_args()})


def export_runs():
    """The filtered list (not one page: all of it) as CSV or JSON, streamed."""
    kind = request.args.get("format", "csv")
    if kind not in EXPORT_TYPES:
        raise ValidationError("format", "must be csv or json")
    flt = search.from_args(request.args)
    engine = reader(db.engine)
    chunks = export.csv_lines(flt, engine) if kind == "csv" else export.json_chunks(flt, engine)
    name = f"runs-{utcnow():%Y%m%d-%H%M%S}.{kind}"
    return Response(chunks, mimetype=EXPORT_TYPES[kind],
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def runs_per_minute():
    """Succeeded and failed runs per minute over the last hour (the monitoring chart)."""
    try:
        minutes = int(request.args.get("minutes", stats.CHART_MINUTES))
    except ValueError:
        raise ValidationError("minutes", "must be a whole number") from None
    if not 1 <= minutes <= 24 * 60:
        raise ValidationError("minutes", "must be between 1 and 1440")
    return jsonify({"minutes": stats.per_minute(minutes)})


def _flag(data, name):
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise ValidationError(name, "must be true or false")
    return value


def _delete_request(data):
    """(states, before, task, dry_run) from a delete body; exactly one of older_than_days and before."""
    if ("older_than_days" in data) == ("before" in data):
        raise ValidationError("older_than_days", "give either older_than_days or before (an ISO date)")
    if "before" in data:
        if not isinstance(data["before"], str):
            raise ValidationError("before", "must be an ISO 8601 date or date-time")
        before = search.parse_time("before", data["before"])
    else:
        before = utcnow() - timedelta(days=retention.check_days(data["older_than_days"], "older_than_days"))
    states = data.get("states", ["SUCCESS"])
    if not isinstance(states, list) or not all(isinstance(s, str) for s in states):
        raise ValidationError("states", "must be a list of state names")
    task = data.get("task")
    if task is not None and not isinstance(task, str):
        raise ValidationError("task", "must be a task name")
    return retention.check_states(states), before, task or None, _flag(data, "dry_run")


def delete_runs():
    """Delete finished runs queued before a date (admin); running and queued runs are never touched."""
    states, before, task, dry_run = _delete_request(json_object())
    if dry_run:
        return jsonify({"status": "success", "dry_run": True, "would_delete": retention.count(states, before, task),
                        "message": "Nothing deleted (dry run)"})
    removed = retention.delete_finished(states, before, task)
    return jsonify({"status": "success", "deleted": removed, "dry_run": False,
                    "message": f"Deleted {removed} run(s) in {', '.join(states)} queued before {before:%Y-%m-%d %H:%M} UTC"})


def cleanup_runs():
    """The retention clean-up now: successful runs older than `days` (30), failures kept unless asked."""
    data = json_object(required=False)
    outcome = retention.cleanup(days=data.get("days", retention.DEFAULT_KEEP_DAYS),
                                include_failures=_flag(data, "include_failures"), dry_run=_flag(data, "dry_run"))
    message = (f"Would delete {outcome['would_delete']} run(s)" if outcome["dry_run"]
               else f"Deleted {outcome['deleted']} run(s)")
    return jsonify({"status": "success", "message": message, **outcome})


def run_or_404(celery_task_id):
    run = runs.get(celery_task_id)
    if run is None:
        raise NotFound(f"no run with Celery task id {celery_task_id}")
    return run


def get_run(celery_task_id):
    """A run's detail, with the scheduled task it came from (None for an ad-hoc run)."""
    run = run_or_404(celery_task_id)
    schedule = run.scheduled_task
    return jsonify({**runs.as_dict(run),
                    "scheduled_task": {"id": schedule.id, "name": schedule.name} if schedule else None})


def cancel_run(celery_task_id):
    """Cancel one run: revoked when queued, its execution stopped for real when running."""
    run = run_or_404(celery_task_id)
    outcome = cancel.cancel_run(celery(), current_app.config["INSTANCE_PATH"], run)
    message = f"Run {celery_task_id} has been cancelled and marked as failed"
    return jsonify({"status": "success", "message": message, **outcome.as_dict()})


def stop_retries(celery_task_id):
    """The same operation as scripts/stop_retries.py: stop a retry loop for good, step by step."""
    run_or_404(celery_task_id)
    runs.end_transaction()
    report = operations.stop_retries(celery(), current_app.config["INSTANCE_PATH"], celery_task_id)
    status = "success" if report["ok"] else "error"
    message = f"Retry loop of {celery_task_id} {'stopped' if report['ok'] else 'not confirmed stopped'}"
    return jsonify({"status": status, "message": message, **report}), (200 if report["ok"] else 500)
