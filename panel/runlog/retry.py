"""Retrying a run: the same task type, args, kwargs and queue sent again as a new run that names the old one."""
import logging

from panel.broker import publish
from panel.errors import ConflictError
from panel.runlog import runs
from panel.runlog.ending import OPEN
from panel.runlog.recorder import RETRY_OF_HEADER

log = logging.getLogger("panel.retry")


def _stored(celery, celery_task_id):
    """What the result backend keeps of the run (with result_extended: its args, kwargs and queue), or {}.

    The run log has no queue column; the backend's extended result keeps the routing key the worker took it from.
    """
    try:
        meta = celery.backend.get_task_meta(celery_task_id)
    except Exception as exc:  # a backend that is away only costs us the queue: the task's own default is used
        log.warning("could not read the result backend for %s: %s", celery_task_id, exc)
        return {}
    return meta if isinstance(meta, dict) else {}


def what_to_send(celery, run):
    """(task name, args, kwargs, queue or None) of an ended run; 409 when it is open or its arguments are unknown."""
    if run.status in OPEN:
        raise ConflictError(f"Run {run.celery_task_id} is still {run.status} ({run.state}): only an ended run "
                            f"can be retried; cancel it first or wait for it to end")
    stored = _stored(celery, run.celery_task_id)
    args, kwargs = run.args, run.kwargs
    if not isinstance(args, list) or not isinstance(kwargs, dict):  # recorded from events: only a repr
        args, kwargs = stored.get("args"), stored.get("kwargs")
    if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict):
        raise ConflictError(f"Run {run.celery_task_id}'s arguments are known only as the worker showed them "
                            f"(a repr, maybe cut): it cannot be sent again as it was")
    return run.task_name, list(args), kwargs, stored.get("queue") or None


def send_again(celery, run):
    """Send the run again as a new run (recorded at once, retry_of set, by the recorder); its Celery task id."""
    old_id = run.celery_task_id
    name, args, kwargs, queue = what_to_send(celery, run)
    runs.end_transaction()  # the recorder writes the new row from its own connection: hold no lock meanwhile
    sent = publish.send(celery, name, args, kwargs, headers={RETRY_OF_HEADER: old_id}, queue=queue)
    log.info("run %s of %s sent again as %s (queue %s)", old_id, name, sent.id, queue or "default")
    return sent.id, queue
