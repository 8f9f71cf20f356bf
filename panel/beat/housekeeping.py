"""The panel's own tasks (its run-log clean-up): with your project attached no worker knows them, so the panel
runs them."""
import logging
import threading

from celery.utils import uuid

from panel.broker import publish
from panel.runlog import recorder
from panel.target import HOUSEKEEPING_TASKS, Target

log = logging.getLogger("panel.housekeeping")


def runs_here(config, task_name):
    """True for a housekeeping task while a project is attached (the embedded worker runs them otherwise)."""
    return task_name in HOUSEKEEPING_TASKS and not Target.of(config).embedded


def send(celery, task_name, args, kwargs, headers):
    """Send a schedule's task by name, or run it here when it is the panel's own; its result (with .id)."""
    if runs_here(celery.flask_app.config, task_name):
        return run_here(celery, task_name, args, kwargs, headers)
    sent = publish.send(celery, task_name, args, kwargs, headers=headers)
    recorder.flush()  # run-now answers with a run that is in the log; Beat's run count has moved
    return sent


def run_here(celery, task_name, args, kwargs, headers):
    """A recorded run in a thread of this process: sent, started and ended in the run log like any other."""
    task_id = uuid()
    message = dict(headers, id=task_id, task=task_name)
    if celery.flask_app.config["RECORD_RUNS"]:
        recorder.on_publish(sender=task_name, body=(args, kwargs, {}), headers=message)
    recorder.on_schedule_publish(headers=message)
    recorder.flush()
    threading.Thread(target=_apply, args=(celery.tasks[task_name], task_id, args, kwargs, message),
                     name=f"housekeeping-{task_name}", daemon=True).start()
    return celery.AsyncResult(task_id)


def _apply(task, task_id, args, kwargs, headers):
    """Celery's eager apply: the same task_prerun/success/failure signals a worker sends, so the row follows."""
    try:
        task.apply(args=args, kwargs=kwargs, task_id=task_id, headers=headers)
    except Exception:  # apply stores a failure as the result; this is for what escapes it
        log.exception("housekeeping task %s (%s) failed", task.name, task_id)
