"""JSON routes for scheduled tasks, their runs, the toolbar's task controls and cancellation."""
import logging

from flask import Blueprint, current_app, jsonify, request

from panel.beat import schedules
from panel.errors import NotFound
from panel.runlog import cancel, runs
from panel.security.auth import operator, viewer
from panel.web.errors import error_response
from panel.web.request_args import json_object

tasks_api = Blueprint("tasks_api", __name__)
log = logging.getLogger("panel.control")


def celery():
    return current_app.extensions["celery"]


def registered():
    """Task names a schedule may use: the user's and ours, not Celery's internals."""
    return {name for name in celery().tasks if not name.startswith("celery.")}


def run_or_404(celery_task_id):
    run = runs.get(celery_task_id)
    if run is None:
        raise NotFound(f"no run with Celery task id {celery_task_id}")
    return run


@tasks_api.get("/api/tasks")
@viewer
def list_tasks():
    return jsonify({"tasks": [schedules.as_dict(t) for t in schedules.all_tasks()]})


@tasks_api.post("/api/tasks")
@operator
def create_task():
    task = schedules.create(json_object(), registered())
    log.info("scheduled task %r created", task.name)
    return jsonify(schedules.as_dict(task)), 201


@tasks_api.get("/api/tasks/<int:task_id>")
@viewer
def get_task(task_id):
    return jsonify(schedules.as_dict(schedules.get(task_id)))


@tasks_api.put("/api/tasks/<int:task_id>")
@operator
def edit_task(task_id):
    task = schedules.edit(task_id, json_object(), registered())
    log.info("scheduled task %r edited", task.name)
    return jsonify(schedules.as_dict(task))


@tasks_api.delete("/api/tasks/<int:task_id>")
@operator
def delete_task(task_id):
    name = schedules.delete(task_id)
    log.info("scheduled task %r deleted", name)
    return jsonify({"status": "success", "message": f"Task {name} deleted"})


@tasks_api.post("/api/tasks/<int:task_id>/run")
@operator
def run_task(task_id):
    task = schedules.get(task_id)
    name = task.name
    celery_id = schedules.run_now(task, celery())
    log.info("scheduled task %r sent now as %s", name, celery_id)
    return jsonify({"status": "success", "message": f"Task {name} sent", "celery_task_id": celery_id})


@tasks_api.post("/api/tasks/<int:task_id>/enable")
@operator
def enable_task(task_id):
    return jsonify(schedules.as_dict(schedules.set_enabled(task_id, True)))


@tasks_api.post("/api/tasks/<int:task_id>/disable")
@operator
def disable_task(task_id):
    return jsonify(schedules.as_dict(schedules.set_enabled(task_id, False)))


@tasks_api.get("/api/tasks/<int:task_id>/runs")
@viewer
def task_runs(task_id):
    schedules.get(task_id)
    try:
        limit = int(request.args.get("limit", 100))
    except ValueError:
        return error_response(400, "limit must be a whole number")
    return jsonify({"runs": [runs.as_dict(r) for r in runs.of_task(task_id, limit)]})


@tasks_api.get("/api/runs/<celery_task_id>")
@viewer
def get_run(celery_task_id):
    """A run's detail, with the scheduled task it came from (None for an ad-hoc run)."""
    run = run_or_404(celery_task_id)
    schedule = run.scheduled_task
    return jsonify({**runs.as_dict(run),
                    "scheduled_task": {"id": schedule.id, "name": schedule.name} if schedule else None})


@tasks_api.post("/scheduler/run-all-tasks/")
@operator
def run_all_tasks():
    """Seed 000: send every enabled task now."""
    sent = schedules.run_all(celery())
    log.info("run-all-tasks: sent %d", len(sent))
    return jsonify({"status": "success", "message": f"Sent {len(sent)} enabled task(s)", "count": len(sent),
                    "celery_task_ids": [cid for _, cid in sent],
                    "tasks": [{"name": name, "celery_task_id": cid} for name, cid in sent]})


@tasks_api.post("/scheduler/stop-all-tasks/")
@operator
def stop_all_tasks():
    """Seed 000: disable every task; Beat sends none of them from its next look (seconds)."""
    changed = schedules.set_all_enabled(False)
    log.info("stop-all-tasks: disabled %d", changed)
    return jsonify({"status": "success", "message": f"Disabled {changed} task(s)", "disabled": changed})


@tasks_api.post("/scheduler/start-all-tasks/")
@operator
def start_all_tasks():
    """Seed 000: enable every task again."""
    changed = schedules.set_all_enabled(True)
    log.info("start-all-tasks: enabled %d", changed)
    return jsonify({"status": "success", "message": f"Enabled {changed} task(s)", "enabled": changed})


@tasks_api.post("/scheduler/cancel-task/<int:task_id>/")
@operator
def cancel_task(task_id):
    """Seed 001: stop a scheduled task's queued and running runs; the database says failed."""
    task = schedules.get(task_id)
    name = task.name
    outcome = cancel.cancel_task(celery(), current_app.config["INSTANCE_PATH"], task)
    message = f"Task {name} has been cancelled and marked as failed"
    return jsonify({"status": "success", "message": message, **outcome.as_dict()})


@tasks_api.post("/scheduler/cancel-run/<celery_task_id>/")
@operator
def cancel_run(celery_task_id):
    run = run_or_404(celery_task_id)
    outcome = cancel.cancel_run(celery(), current_app.config["INSTANCE_PATH"], run)
    message = f"Run {celery_task_id} has been cancelled and marked as failed"
    return jsonify({"status": "success", "message": message, **outcome.as_dict()})


@tasks_api.post("/scheduler/stop-retries/<celery_task_id>/")
@operator
def stop_retries(celery_task_id):
    """The same operation as scripts/stop_retries.py: stop a retry loop for good, step by step."""
    from panel.runlog import operations
    run_or_404(celery_task_id)
    runs.end_transaction()
    report = operations.stop_retries(celery(), current_app.config["INSTANCE_PATH"], celery_task_id)
    status = "success" if report["ok"] else "error"
    message = f"Retry loop of {celery_task_id} {'stopped' if report['ok'] else 'not confirmed stopped'}"
    return jsonify({"status": status, "message": message, **report}), (200 if report["ok"] else 500)
