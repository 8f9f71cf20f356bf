"""A running run's own progress: the custom state and meta its task wrote with `update_state` (e.g. PROGRESS with
{"done": 3, "total": 10}), read from the result backend, where the worker keeps it while the run runs."""
import json
import logging

from celery import states

from models import RUNNING
from panel.broker import results

log = logging.getLogger("panel.progress")
META_MAX_CHARS = 4000  # a meta is a few numbers and words; a bigger one is cut rather than fill the page


def _plain(meta):
    """The meta as JSON values (a non-JSON value as its text), cut when it is too big to show."""
    text = json.dumps(meta, ensure_ascii=False, sort_keys=True, default=str)
    return json.loads(text) if len(text) <= META_MAX_CHARS else text[:META_MAX_CHARS - 1] + "…"


def of_task(celery, task_id):
    """{"state", "meta"} when the backend holds a custom state for the task (one Celery does not name), else None;
    a backend that cannot be read is None too (the run's own state still says where it is)."""
    try:
        stored = results.meta(celery, task_id)
    except Exception as exc:  # rpc:// keeps nothing; a store away: no progress to show, and the log says why
        log.info("no progress for %s: %s", task_id, exc)
        return None
    if not stored or stored.get("status") in states.ALL_STATES:
        return None
    return {"state": stored["status"], "meta": _plain(stored.get("result"))}


def of_run(celery, run):
    """The progress of a run that is running; None without asking the backend for any other (cheap)."""
    if run.status != RUNNING:
        return None
    return of_task(celery, run.celery_task_id)
