"""The result backend seam: what Celery stored about a run's end."""


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
