"""Runs (one execution each): the results browser's list, export and figures, deletion, cancel, stopping retries."""
import logging
import threading

from flask import Response, current_app, g, jsonify, request

from models import ADMIN, db, utcnow
from panel.database import reader
from panel.errors import NotFound
from panel.runlog import bulk, cancel, export, operations, progress, retention, retry, runs, search, stats
from panel.security import audit
from panel.web.contract import api
from panel.web.errors import error_response
from panel.web.schemas.bulk import BulkDone, BulkIn
from panel.web.schemas.runs import (
    Cancelled,
    CleanedUp,
    Cleanup,
    Deleted,
    ExportQuery,
    PerMinute,
    PerMinuteQuery,
    Retried,
    RetriesStopped,
    RunDelete,
    RunDetail,
    RunPage,
    RunQuery,
)

log = logging.getLogger("panel.results")
CONFIRMED = "api.bulk_runs.confirmed"  # the audit action of a bulk revoke's acknowledgement, when it follows
EXPORT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}
EXPORT_CONTENT = {"text/csv": {"schema": {"type": "string"}},
                  "application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Run"}}}}
LIST_OMITS = ("traceback",)  # the list stays light (its other values cut to previews); a run's detail has everything


def celery():
    return current_app.extensions["celery"]


def listed(row):
    record = runs.as_dict(row)
    for key in LIST_OMITS:
        record.pop(key)
        record["cut"].pop(key, None)  # cut names only what the list shows
    return record


@api(RunPage, 400)
def list_runs(query: RunQuery):
    """Every run, newest first (or oldest, or slowest first), filtered; follow next_cursor for the next page.

    Long args, kwargs, results and errors are cut to previews, named in each run's `cut` with their whole size;
    GET /api/runs/<id> has them whole. 400 names the filter at fault, also when `until` is not after `since` or the
    cursor is not one we gave.
    """
    flt = query.to_filter()
    rows, next_cursor = search.page(flt)
    return jsonify({"runs": [listed(r) for r in rows], "next_cursor": next_cursor, "filter": flt.as_args()})


@api(None, 400, content=EXPORT_CONTENT)
def export_runs(query: ExportQuery):
    """The filtered list (not one page: all of it) as CSV or JSON, streamed; long values cut as in the list."""
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
    """A run's detail, with the schedule it came from (None for an ad-hoc run) and, while it runs, its progress."""
    found = runs.detail(celery_task_id)
    if found is None:
        raise NotFound(f"no run with Celery task id {celery_task_id}")
    run, schedule_name, retried_by = found
    schedule = {"id": run.scheduled_task_id, "name": schedule_name} if schedule_name is not None else None
    return jsonify({**runs.as_dict(run), "retried_by": retried_by, "scheduled_task": schedule,
                    "progress": progress.of_run(celery(), run)})


@api(Retried, 400, 404, 409, 503)
def retry_run(celery_task_id):
    """Send an ended run again as a new run: same task type, args, kwargs and queue; it names the old one.

    400 (field args or kwargs): they exceed the limits of a send (ARGS_DEPTH_MAX, ARGS_BYTES_MAX); 409: the run is
    still queued or running, its message is quarantined (requeue it from the quarantine), or its task or arguments
    were never recorded (or only as a repr); 503: the broker is away.
    """
    run = run_or_404(celery_task_id)
    new_id, queue = retry.send_again(celery(), run)
    return jsonify({"status": "success", "celery_task_id": new_id, "retry_of": celery_task_id, "queue": queue,
                    "message": f"Run {celery_task_id} sent again as {new_id}"})


@api(BulkDone, 400, 403, 503)
def bulk_runs(json: BulkIn):
    """Retry, revoke, cancel or delete (admin) every run a filter matches; a dry run only counts.

    400 (field `filter.<name>` for a bad filter, `filter` for the whole): more runs than BULK_MAX_RUNS, or a delete
    that would take an open run. Retry sends only what POST /api/runs/<id>/retry would (in a dry run too): a run
    whose message is quarantined or whose arguments exceed a send's limits is named in `failed` with why.
    """
    if json.action == "delete" and g.identity.role != ADMIN:
        return error_response(403, f"your role ({g.identity.role}) cannot delete runs; it needs admin")
    done = bulk.act(celery(), current_app.extensions["supervisor"].host, json.filter.to_filter(), json.ids,
                    json.action, g.identity.username, cap=current_app.config["BULK_MAX_RUNS"], dry_run=json.dry_run)
    acknowledged = _acknowledged(done, json.confirm)
    return jsonify({"status": "success", "action": json.action, "dry_run": json.dry_run,
                    "message": bulk_message(json.action, json.dry_run, done, follows=acknowledged is None),
                    "matched": done.matched, "applies": done.applies, "done": done.done, "new_ids": done.new_ids,
                    "acknowledged_by": acknowledged, "not_confirmed": done.not_confirmed,
                    "failed": [{"celery_task_id": cid, "reason": why} for cid, why in done.failed]})


def _acknowledged(done, wait):
    """A revoke's workers: asked now when the request waits for them; else None, and they follow in the audit log."""
    if done.confirm is None:
        return done.acknowledged_by
    if wait:
        return done.confirm()
    app, who, source = current_app._get_current_object(), g.identity.username, request.remote_addr
    threading.Thread(target=_confirm_later, args=(app, done, who, source), name="bulk-revoke-confirm",
                     daemon=True).start()
    return None


def _confirm_later(app, done, who, source):
    """Off the request: ask which workers took the revokes and write the answer to the audit log."""
    with app.app_context():
        try:
            names = done.confirm()
        except Exception as exc:  # the broker went away meanwhile: said, not lost
            log.warning("the acknowledgement of a bulk revoke could not be asked: %s", exc)
            names, why = [], f"; the workers could not be asked ({type(exc).__name__}: {exc})"
        else:
            why = "" if names else "; no worker answered after the revokes (broadcast only)"
        audit.record(who, source, CONFIRMED, "/api/runs/bulk", "success" if names else "failure",
                     f"revoke of {done.done:,} run(s) acknowledged by {', '.join(names) or 'none'}{why}")
        db.session.remove()


PAST = {"retry": "Sent again", "revoke": "Revoked", "cancel": "Cancelled", "delete": "Deleted"}


def bulk_message(action, dry_run, done, follows=False):
    applies = f"{done.applies} of the {done.matched} matching run(s)"
    unsent = f"; {len(done.failed)} cannot be sent again (see failed)" if done.failed else ""
    if dry_run:
        return f"Would {action} {applies} (dry run: nothing done){unsent}"
    later = "; which workers took it follows in the audit log" if follows else ""
    return f"{PAST[action]} {done.done}: {action} applied to {applies}{unsent}{later}"


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
