"""Runs (one execution each): the results browser's list, export and figures, deletion, cancel, stopping retries."""
import logging

from flask import Response, current_app, g, jsonify

from models import db, utcnow
from panel.database import reader
from panel.errors import NotFound
from panel.runlog import cancel, export, operations, retention, runs, search, stats
from panel.web.contract import api
from panel.web.schemas.runs import (
    Cancelled,
    CleanedUp,
    Cleanup,
    Deleted,
    ExportQuery,
    PerMinute,
    PerMinuteQuery,
    RetriesStopped,
    RunDelete,
    RunDetail,
    RunPage,
    RunQuery,
)

log = logging.getLogger("panel.results")
EXPORT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}
EXPORT_CONTENT = {"text/csv": {"schema": {"type": "string"}},
                  "application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Run"}}}}
LIST_OMITS = ("traceback",)  # the list stays light; a run's detail has everything


def celery():
    return current_app.extensions["celery"]


def listed(row):
    record = runs.as_dict(row)
    for key in LIST_OMITS:
        record.pop(key)
    return record


@api(RunPage, 400)
def list_runs(query: RunQuery):
    """Every run, newest first, filtered; follow next_cursor for the next page.

    400 names the filter at fault, also when `until` is not after `since` or the cursor is not one we gave.
    """
    flt = query.to_filter()
    rows, next_cursor = search.page(flt)
    return jsonify({"runs": [listed(r) for r in rows], "next_cursor": next_cursor, "filter": flt.as_args()})


@api(None, 400, content=EXPORT_CONTENT)
def export_runs(query: ExportQuery):
    """The filtered list (not one page: all of it) as CSV or JSON, streamed."""
    flt = query.to_filter()
    engine = reader(db.engine)
    chunks = export.csv_lines(flt, engine) if query.format == "csv" else export.json_chunks(flt, engine)
    name = f"runs-{utcnow():%Y%m%d-%H%M%S}.{query.format}"
    return Response(chunks, mimetype=EXPORT_TYPES[query.format],
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@api(PerMinute, 400)
def runs_per_minute(query: PerMinuteQuery):
    """Succeeded and failed runs per minute, oldest first (the monitoring chart)."""
    return jsonify({"minutes": stats.per_minute(query.minutes)})


@api(Deleted, 400)
def delete_runs(json: RunDelete):
    """Delete finished runs queued before a date (admin); queued, running and retrying runs are never touched."""
    before = json.cutoff(utcnow())
    if json.dry_run:
        return jsonify({"status": "success", "dry_run": True, "message": "Nothing deleted (dry run)",
                        "would_delete": retention.count(json.states, before, json.task)})
    removed = retention.delete_finished(json.states, before, json.task)
    return jsonify({"status": "success", "deleted": removed, "dry_run": False,
                    "message": f"Deleted {removed} run(s) in {', '.join(json.states)} queued before "
                               f"{before:%Y-%m-%d %H:%M} UTC"})


@api(CleanedUp, 400, optional_body=True)
def cleanup_runs(json: Cleanup):
    """The retention clean-up now (admin): successful runs older than `days` (30); failures kept unless asked."""
    outcome = retention.cleanup(days=json.days, include_failures=json.include_failures, dry_run=json.dry_run)
    message = (f"Would delete {outcome['would_delete']} run(s)" if outcome["dry_run"]
               else f"Deleted {outcome['deleted']} run(s)")
    return jsonify({"status": "success", "message": message, **outcome})


def run_or_404(celery_task_id):
    run = runs.get(celery_task_id)
    if run is None:
        raise NotFound(f"no run with Celery task id {celery_task_id}")
    return run


@api(RunDetail, 404, 405)
def get_run(celery_task_id):
    """A run's detail, with the schedule it came from (None for an ad-hoc run)."""
    run = run_or_404(celery_task_id)
    schedule = run.schedule
    return jsonify({**runs.as_dict(run),
                    "scheduled_task": {"id": schedule.id, "name": schedule.name} if schedule else None})


@api(Cancelled, 404, 409)
def cancel_run(celery_task_id):
    """Cancel one run: revoked when queued, its execution stopped for real when running. 409: it has ended."""
    run = run_or_404(celery_task_id)
    outcome = cancel.cancel_run(celery(), current_app.extensions["supervisor"].host, run)
    message = f"Run {celery_task_id} has been cancelled and marked as failed"
    return jsonify({"status": "success", "message": message, **outcome.as_dict()})


@api(RetriesStopped, 404, (500, RetriesStopped), (503, RetriesStopped))
def stop_retries(celery_task_id):
    """The same operation as scripts/stop_retries.py: stop a retry loop for good, step by step.

    503: no worker took the revoke, so nothing changed (the row stays open); 500: a step was not proven.
    """
    run_or_404(celery_task_id)
    runs.end_transaction()
    report = operations.stop_retries(celery(), current_app.extensions["supervisor"].host, celery_task_id,
                                     g.identity.username)
    unheard = not report["steps"][0]["ok"]  # the revoke's own step: which workers took it
    message = (f"Retry loop of {celery_task_id} {'stopped' if report['ok'] else 'not confirmed stopped'}"
               + ("; no worker answered the revoke: start a worker and try again" if unheard else ""))
    code = 200 if report["ok"] else 503 if unheard else 500
    return jsonify({"status": "success" if report["ok"] else "error", "message": message, **report}), code
