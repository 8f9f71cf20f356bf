"""Schedules (what Beat sends, served at /api/tasks): edit, run now, enable, the toolbar's task controls, cancel."""
import logging

from flask import current_app, jsonify

from panel.beat import schedules
from panel.cluster import task_types
from panel.runlog import cancel, runs
from panel.web.contract import api
from panel.web.schemas.common import Done, Sent
from panel.web.schemas.runs import Cancelled
from panel.web.schemas.schedules import (
    Disabled,
    Enabled,
    RunsQuery,
    Schedule,
    ScheduleIn,
    SchedulePatch,
    ScheduleRuns,
    Schedules,
    SentAll,
)

log = logging.getLogger("panel.control")
# What an answer carrying a schedule's id, or a run's, feeds (OpenAPI links).
SCHEDULE_OPS = ("get_task", "edit_task", "delete_task", "run_task", "enable_task", "disable_task", "task_runs",
                "cancel_task")
RUN_OPS = ("get_run", "cancel_run", "stop_retries")
TO_SCHEDULE = {op: {"task_id": "$response.body#/id"} for op in SCHEDULE_OPS}
TO_RUN = {op: {"celery_task_id": "$response.body#/celery_task_id"} for op in RUN_OPS}


def celery():
    return current_app.extensions["celery"]


def registered():
    """Task types a schedule may name: the user's and ours, not Celery's internals (or your project's)."""
    return task_types.schedulable(celery())


@api(Schedules)
def list_tasks():
    """Every schedule, by name."""
    return jsonify({"tasks": [schedules.as_dict(t) for t in schedules.all_schedules()]})


@api(Schedule, 400, 409, status=201, links=TO_SCHEDULE)
def create_task(json: ScheduleIn):
    """Create a schedule; Beat sends it from its next look (seconds).

    400 names the field at fault (an unknown task type, a crontab Celery cannot read); 409: the name is taken.
    """
    task = schedules.create(json.changes(), registered())
    log.info("schedule %r created", task.name)
    return jsonify(schedules.as_dict(task)), 201


@api(Schedule, 404)
def get_task(task_id):
    """One schedule."""
    return jsonify(schedules.as_dict(schedules.get(task_id)))


@api(Schedule, 400, 404, 409)
def edit_task(task_id, json: SchedulePatch):
    """Change the fields given; an interval replaces a crontab and back. Nothing changes when one is refused."""
    task = schedules.edit(task_id, json.changes(), registered())
    log.info("schedule %r edited", task.name)
    return jsonify(schedules.as_dict(task))


@api(Done, 404)
def delete_task(task_id):
    """Delete a schedule; its runs stay in the run log."""
    name = schedules.delete(task_id)
    log.info("schedule %r deleted", name)
    return jsonify({"status": "success", "message": f"Task {name} deleted"})


@api(Sent, 404, links=TO_RUN)
def run_task(task_id):
    """Send one run now, as Beat would."""
    task = schedules.get(task_id)
    name = task.name
    celery_id = schedules.run_now(task, celery())
    log.info("schedule %r sent now as %s", name, celery_id)
    return jsonify({"status": "success", "message": f"Task {name} sent", "celery_task_id": celery_id})


@api(Schedule, 404)
def enable_task(task_id):
    """Enable a schedule (clears why it was disabled)."""
    return jsonify(schedules.as_dict(schedules.set_enabled(task_id, True)))


@api(Schedule, 404)
def disable_task(task_id):
    """Disable a schedule: Beat stops sending it."""
    return jsonify(schedules.as_dict(schedules.set_enabled(task_id, False)))


@api(ScheduleRuns, 404)
def task_runs(task_id, query: RunsQuery):
    """The schedule's runs, newest first."""
    schedules.get(task_id)
    return jsonify({"runs": [runs.as_dict(r) for r in runs.of_schedule(task_id, query.limit)]})


@api(SentAll)
def run_all_tasks():
    """The toolbar's Run All Tasks: send every enabled schedule now."""
    sent = schedules.run_all(celery())
    log.info("run-all-tasks: sent %d", len(sent))
    return jsonify({"status": "success", "message": f"Sent {len(sent)} enabled task(s)", "count": len(sent),
                    "celery_task_ids": [cid for _, cid in sent],
                    "tasks": [{"name": name, "celery_task_id": cid} for name, cid in sent]})


@api(Disabled)
def stop_all_tasks():
    """The toolbar's Stop All Tasks: disable every schedule; Beat sends none of them from its next look (seconds)."""
    changed = schedules.set_all_enabled(False)
    log.info("stop-all-tasks: disabled %d", changed)
    return jsonify({"status": "success", "message": f"Disabled {changed} task(s)", "disabled": changed})


@api(Enabled)
def start_all_tasks():
    """The toolbar's Start All Tasks: enable every schedule again."""
    changed = schedules.set_all_enabled(True)
    log.info("start-all-tasks: enabled %d", changed)
    return jsonify({"status": "success", "message": f"Enabled {changed} task(s)", "enabled": changed})


@api(Cancelled, 404, 409)
def cancel_task(task_id):
    """A schedule's Cancel: stop its queued and running runs; the database says failed. 409: nothing runs."""
    task = schedules.get(task_id)
    name = task.name
    outcome = cancel.cancel_schedule(celery(), current_app.extensions["supervisor"].host, task)
    message = f"Task {name} has been cancelled and marked as failed"
    return jsonify({"status": "success", "message": message, **outcome.as_dict()})
