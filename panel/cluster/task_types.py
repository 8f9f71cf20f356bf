"""Task types: what the panel and the workers register, ad-hoc sends, and per-type limits on the workers."""
import inspect
import re

from panel.beat import housekeeping
from panel.broker import connection, publish, remote
from panel.cluster import workers
from panel.errors import NotFound, NoWorkerOnline
from panel.host.target import Target

RATE_LIMIT = re.compile(r"^\d{1,9}(/[smh])?$")  # Celery's form: "10", "10/s", "10/m", "10/h"; "0" lifts it
TIME_LIMIT_MAX_S = 7 * 24 * 3600


def _signature(task):
    try:
        return str(inspect.signature(task.run))
    except (TypeError, ValueError):  # a C function or an odd callable: no signature to show
        return "(...)"


def _doc(task):
    lines = (inspect.getdoc(task.run) or task.__doc__ or "").strip().splitlines()
    return lines[0] if lines else ""


def registered(celery):
    """Every task type known to the panel's registry or reported by a worker, with who has it."""
    by_worker = {}
    for row in workers.rows():
        for name in row.registered or []:
            by_worker.setdefault(name, []).append(row.name)
    names = {n for n in celery.tasks if not n.startswith("celery.")} | set(by_worker)
    out = []
    for name in sorted(names):
        task = celery.tasks.get(name)
        out.append({"name": name, "signature": _signature(task) if task else None, "doc": _doc(task) if task else "",
                    "known_to_panel": task is not None, "workers": sorted(by_worker.get(name, [])),
                    "rate_limit": getattr(task, "rate_limit", None), "time_limit": getattr(task, "time_limit", None),
                    "soft_time_limit": getattr(task, "soft_time_limit", None)})
    return out


def schedulable(celery):
    """Task types a schedule may name: the embedded app's own, or what your project's workers register and the
    panel's housekeeping (the panel never imports your project, so its workers are the only ones who know)."""
    if Target.of(celery.flask_app.config).embedded:
        return {n for n in celery.tasks if not n.startswith("celery.")}
    return {t["name"] for t in registered(celery) if t["workers"]} | set(housekeeping.TASKS)


def require_known(celery, name):
    if name.startswith("celery.") or not any(t["name"] == name for t in registered(celery)):
        raise NotFound(f"no task type named {name} is registered with the panel or any worker")


def send(celery, name, args, kwargs, queue=None):
    """Send one run now (to `queue`, else the task type's own); its row is written like every other run's."""
    require_known(celery, name)
    return publish.send(celery, name, args, kwargs, queue=queue or None).id


def _to_workers(celery, task_name, command, arguments, timeout_s=workers.CONTROL_TIMEOUT_S):
    """One broadcast to the online workers that have the task (or have not said); each reply, or "no reply"."""
    now = workers.utcnow()
    names = [row.name for row in workers.rows() if workers.is_online(row, now)
             and (not row.registered or task_name in row.registered)]
    if not names:
        raise NoWorkerOnline(f"no online worker has {task_name}")
    replies = remote.command(celery, names, command, arguments, timeout_s)
    return {name: replies.get(name, workers.NO_REPLY) for name in names}


def _summary(replies):
    ok = [n for n, r in replies.items() if isinstance(r, dict) and "ok" in r]
    status = "success" if len(ok) == len(replies) else "error"
    return {"status": status, "applied_by": ok, "replies": replies,
            "message": f"{len(ok)} of {len(replies)} worker(s) applied it"}


def set_rate_limit(celery, broker_url, name, rate):
    """Celery's form: "10", "10/s", "10/m", "10/h"; "0" lifts it (checked by the request's model)."""
    require_known(celery, name)
    connection.ping(broker_url)
    return _summary(_to_workers(celery, name, "rate_limit", {"task_name": name, "rate_limit": str(rate).strip()}))


def set_time_limit(celery, broker_url, name, soft, hard):
    """Celery sets both limits at once: a limit left out or null is removed."""
    require_known(celery, name)
    connection.ping(broker_url)
    return _summary(_to_workers(celery, name, "time_limit", {"task_name": name, "soft": soft, "hard": hard}))
