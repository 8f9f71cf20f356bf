"""Schedules (what Beat sends, served at /api/tasks): edit, run now, enable, the toolbar's task controls, cancel."""
import logging

from flask import current_app, jsonify, request

from panel.beat import schedules
from panel.runlog import cancel, runs
from panel.web.errors import error_response
from panel.web.request_args import json_object

log = logging.getLogger("panel.control")


def celery():
    return current_app.extensions["celery"]


def registered():
    """Task names a schedule may use: the user's and ours, not Celery's internals."""
    return {name for name in celery().tasks if not name.startswith("celery.")}


def list_tasks():
    return jsonify({"tasks": [schedules.as_dict(t) for t in schedules.all_tasks()]})


def create_task():
    task = schedules.create(json_object(), registered())
    log.info("scheduled task %r created", task.name)
    return jsonify(schedules.as_dict(task)), 201


def get_task(task_id):
    return jsonify(schedules.as_dict(schedules.get(task_id)))


def edit_task(task_id):
    task = schedules.edit(task_id, json_object(), registered())
    log.info("scheduled task %r edited", task.name)
    return jsonify(schedules.as_dict(task))


def delete_task(task_id):
    name = schedules.delete(task_id)
    log.info("scheduled task %r deleted", name)
    return jsonify({"status": "success", "message": f"Task {name} deleted"})


def run_task(task_id):
    task = schedules.get(task_id)
    name = task.name
    celery_id = schedules.run_now(task, celery())
    log.info("scheduled task %r sent now as %s", name, celery_id)
    return jsonify({"status": "success", "message": f"Task {name} sent", "celery_task_id": celery_id})


def enable_task(task_id):
    return jsonify(schedules.as_dict(schedules.set_enabled(task_id, True)))


def disable_task(task_id):
    return jsonify(schedules.as_dict(schedules.set_enabled(task_id, False)))


def task_runs(task_id):
    schedules.get(task_id)
    try:
        limit = int(request.args.get("limit", 100))
    except ValueError:
        return error_response(400, "limit must be a whole number")
    return jsonify({"runs": [runs.as_dict(r) for r in runs.of_task(task_id, limit)]})


def run_all_tasks():
    """Seed 000: send every enabled task now."""
    sent = schedules.run_all(celery())
    log.info("run-all-tasks: sent %d", len(sent))
    return jsonify({"status": "success", "message": f"Sent {len(sent)} enabled task(s)", "count": len(sent),
                    "celery_task_ids": [cid for _, cid in sent],
                    "tasks": [{"name": name, "celery_task_id": cid} for name, cid in sent]})


def stop_all_tasks():
    """Seed 000: disable every task; Beat sends none of them from its next look (seconds)."""
    changed = schedules.set_all_enabled(False)
    log.info("stop-all-tasks: disabled %d", changed)
    return jsonify({"status": "success", "message": f"Disabled {changed} task(s)", "disabled": changed})


def start_all_tasks():
    """Seed 000: enable every task again."""
    changed = schedules.set_all_enabled(True)
    log.info("start-all-tasks: enabled %d", changed)
    return jsonify({"status": "success", "message": f"Enabled {changed} task(s)", "enabled": changed})


def cancel_task(task_id):
    """Seed 001: stop a scheduled task's queued and running runs; the database says failed."""
    task = schedules.get(task_id)
    name = task.name
    outcome = cancel.cancel_task(celery(), current_app.config["INSTANCE_PATH"], task)
    message = f"Task {name} has been cancelled and marked as failed"
    return jsonify({"status": "success", "message": message, **outcome.as_dict()})


