"""Retrying a run: the same task type, args, kwargs and queue sent again as a new run that names the old one.

A retry sends what a person could not send by hand: its arguments meet the limits of a send (a run recorded from
the broker may hold anything), and a message the quarantine holds is not sent again from here (it killed the worker;
requeueing it from the quarantine is the deliberate path).
"""
import logging

from sqlalchemy import select

from models import QUARANTINED, QuarantinedMessage, db
from panel.broker import publish, results
from panel.cluster import arguments
from panel.errors import ConflictError, ValidationError
from panel.runlog import recorder, runs
from panel.runlog.ending import OPEN
from panel.runlog.recorder import RETRY_OF_HEADER

log = logging.getLogger("panel.retry")
IDS_PER_LOOK = 500  # task ids per query when bulk retry asks which of its runs the quarantine holds
RECORD_THEM = ("set result_extended = True in the project's Celery settings to have the result backend keep every "
               "run's task name and arguments")


def _stored(celery, celery_task_id):
    """What the result backend keeps of the run (with result_extended: its args, kwargs and queue), or {}.

    The run log has no queue column; the backend's extended result keeps the routing key the worker took it from.
    """
    try:
        meta = results.meta(celery, celery_task_id)  # wherever the project keeps them (Redis, SQL, django-db)
    except Exception as exc:  # a backend that is away only costs us the queue: the task's own default is used
        log.warning("could not read the result backend for %s: %s", celery_task_id, exc)
        return {}
    return meta if isinstance(meta, dict) else {}


def _in_the_log(run):
    """The run log alone knows the task and the arguments as values (not a repr): no backend read is needed."""
    return bool(run.task_name) and isinstance(run.args, list) and isinstance(run.kwargs, dict)


def quarantined(task_ids):
    """Which of these runs' messages the quarantine holds (one query per IDS_PER_LOOK ids)."""
    ids, held = sorted(set(task_ids)), set()
    for start in range(0, len(ids), IDS_PER_LOOK):
        held.update(db.session.scalars(select(QuarantinedMessage.celery_task_id).where(
            QuarantinedMessage.celery_task_id.in_(ids[start:start + IDS_PER_LOOK]),
            QuarantinedMessage.state == QUARANTINED)))
    return held


def _not_held(run, held):
    """409 when the run's message waits in the quarantine (`held`: the quarantined ids, None to ask the database)."""
    if run.celery_task_id in (quarantined([run.celery_task_id]) if held is None else held):
        raise ConflictError(f"message {run.celery_task_id} is quarantined (the worker died holding it): it is not "
                            f"sent again by a retry; requeue it from the quarantine on the workers page, or delete "
                            f"it there")


def _within_limits(run, args, kwargs):
    """400 naming args or kwargs when they exceed what a send accepts (the same check as the send's)."""
    for field, value in (("args", args), ("kwargs", kwargs)):
        try:
            arguments.check_payload(value)
        except ValueError as exc:
            raise ValidationError(field, f"run {run.celery_task_id} cannot be retried: what it recorded as {field} "
                                         f"{exc}, and a retry meets the limits of a send (ARGS_DEPTH_MAX, "
                                         f"ARGS_BYTES_MAX)") from None


def _what(run, stored, held=None):
    """(task name, args, kwargs) to send again, from the run log or else the backend's extended result; 409 why not
    (open, never recorded, quarantined), 400 when the arguments exceed a send's limits."""
    _not_held(run, held)
    if run.status in OPEN:
        raise ConflictError(f"Run {run.celery_task_id} is still {run.status} ({run.state}): only an ended run "
                            f"can be retried; cancel it first or wait for it to end")
    name, args, kwargs = run.task_name or stored.get("name"), run.args, run.kwargs
    if not isinstance(args, list) or not isinstance(kwargs, dict):  # recorded from events: a repr, or nothing
        args, kwargs = stored.get("args"), stored.get("kwargs")
    if name and isinstance(args, (list, tuple)) and isinstance(kwargs, dict):
        _within_limits(run, list(args), kwargs)
        return name, list(args), kwargs
    if not runs.args_known(run) or not name:
        what = "arguments were" if name else "task was" if runs.args_known(run) else "task and arguments were"
        raise ConflictError(f"Run {run.celery_task_id} cannot be retried: its {what} never recorded (the panel "
                            f"did not see it sent or received, and the result backend keeps none); {RECORD_THEM}")
    raise ConflictError(f"Run {run.celery_task_id}'s arguments are known only as the worker showed them "
                        f"(a repr, maybe cut): it cannot be sent again as it was; {RECORD_THEM}")


def refusal(celery, run, held=None):
    """Why the run cannot be sent again as it was, or None: one rule for the API, the run page and bulk retry
    (`held`: the quarantined ids among bulk retry's runs, read once for all of them)."""
    # A bulk dry run asks this for every run, so it counts exactly what the real run sends; the backend is read
    # only for a run whose task or arguments the run log lacks.
    try:
        _what(run, {} if _in_the_log(run) else _stored(celery, run.celery_task_id), held)
    except (ConflictError, ValidationError) as exc:
        return str(exc)
    return None


def what_to_send(celery, run):
    """(task name, args, kwargs, queue or None) of an ended run; 409 when it is open, quarantined or its arguments
    are unknown, 400 when they exceed a send's limits."""
    stored = _stored(celery, run.celery_task_id)
    name, args, kwargs = _what(run, stored)
    return name, args, kwargs, stored.get("queue") or None


def send_again(celery, run):
    """Send the run again as a new run (recorded at once, retry_of set, by the recorder); its Celery task id."""
    old_id = run.celery_task_id
    name, args, kwargs, queue = what_to_send(celery, run)
    runs.end_transaction()  # the recorder writes the new row from its own connection: hold no lock meanwhile
    sent = publish.send(celery, name, args, kwargs, headers={RETRY_OF_HEADER: old_id}, queue=queue)
    recorder.flush()  # the new run's row exists when the caller is told its id
    log.info("run %s of %s sent again as %s (queue %s)", old_id, name, sent.id, queue or "default")
    return sent.id, queue
