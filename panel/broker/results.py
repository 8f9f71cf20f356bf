"""The result backend seam: what Celery stored about a run's end, and forgetting it."""
from datetime import datetime, timezone

from celery.result import AsyncResult

from models import iso


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
            "traceback": meta.get("traceback"), "date_done": iso(_done_at(meta)),
            "name": meta.get("name"), "args": meta.get("args"), "kwargs": meta.get("kwargs"),
            "worker": meta.get("worker")}


def forget(celery, task_id):
    """Drop the stored result, so nothing reads it as pending for ever."""
    AsyncResult(task_id, app=celery).forget()


def ended_since(celery, since, scan_count=1000, batch=500):
    """Every run the result backend keeps as ended at or after `since` (an aware datetime), as its stored meta.

    Only a key-value backend on Redis can be listed (SCAN of its task keys); any other backend gives nothing.
    """
    backend = celery.backend
    client = getattr(backend, "client", None)
    if not hasattr(backend, "task_keyprefix") or client is None or not hasattr(client, "scan_iter"):
        return []
    prefix = backend.task_keyprefix
    pattern = (prefix.decode() if isinstance(prefix, bytes) else prefix) + "*"
    found, keys = [], []
    for key in client.scan_iter(match=pattern, count=scan_count):  # streamed: a day of results may be millions
        keys.append(key)
        if len(keys) == batch:
            found += _ended(backend, client.mget(keys), since)
            keys = []
    return found + (_ended(backend, client.mget(keys), since) if keys else [])


def _ended(backend, payloads, since):
    out = []
    for payload in payloads:
        meta = _decoded(backend, payload)
        done = _done_at(meta)
        if meta and meta.get("status") in backend.READY_STATES and done and done >= since:
            out.append(dict(meta, date_done=done))
    return out


def _decoded(backend, payload):
    try:
        return backend.decode_result(payload) if payload else None
    except Exception:  # a key some other program wrote under the same prefix
        return None


def _done_at(meta):
    """date_done as an aware datetime (Celery stores ISO text; a naive one is UTC)."""
    value = (meta or {}).get("date_done")
    try:
        value = datetime.fromisoformat(value) if isinstance(value, str) else value
    except ValueError:
        return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
