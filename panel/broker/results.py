"""The result backend seam: what Celery stored about a run's end, and forgetting it."""
from celery.result import AsyncResult


def finished_results(celery, task_ids):
    """What the result backend stored for runs that ended (SUCCESS or FAILURE), by task id.

    The backend's own socket timeouts apply (celery_setup.py); a run it knows nothing of is left out.
    """
    found = {}
    for task_id in task_ids:
        meta = celery.backend.get_task_meta(task_id)
        if meta.get("status") in ("SUCCESS", "FAILURE"):
            found[task_id] = meta
    return found


def state(celery, task_id):
    """The backend's word on one task: its state (PENDING also means "unknown") and its result, as text."""
    result = AsyncResult(task_id, app=celery)
    return {"state": result.state, "result": repr(result.info) if result.info is not None else None}


def stored(celery, task_id):
    """Everything the backend keeps of one task (state, result, traceback, date_done; name and args when the app
    stores extended results), or None when it knows nothing of it."""
    meta = celery.backend.get_task_meta(task_id)
    if meta.get("status") in (None, "PENDING"):
        return None
    result = meta.get("result")
    return {"state": meta["status"], "result": None if result is None else repr(result),
            "traceback": meta.get("traceback"), "date_done": str(meta.get("date_done") or "") or None,
            "name": meta.get("name"), "args": meta.get("args"), "kwargs": meta.get("kwargs"),
            "worker": meta.get("worker")}


def forget(celery, task_id):
    """Drop the stored result, so nothing reads it as pending for ever."""
    AsyncResult(task_id, app=celery).forget()
