"""Task types: what the panel and the workers register, ad-hoc sends, and per-type limits on the workers."""
import inspect
import re
from datetime import datetime, timedelta, timezone

from models import iso
from panel.broker import connection, publish, remote
from panel.cluster import workers
from panel.errors import NotFound, NoWorkerOnline, ValidationError
from panel.target import HOUSEKEEPING_TASKS, Target

RATE_LIMIT = re.compile(r"^\d{1,9}(/[smh])?$")  # Celery's form: "10", "10/s", "10/m", "10/h"; "0" lifts it
TIME_LIMIT_MAX_S = 7 * 24 * 3600
LATER_LIMIT_S = 7 * 24 * 3600  # the document's bound on a countdown; SEND_LATER_MAX_S is the one a send meets
MOMENT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d{1,6})?)?(Z|[+-]\d\d:\d\d)$")  # ISO 8601, zone given


def _signature(task):
    try:
        return str(inspect.signature(task.run))
    except (TypeError, ValueError):  # a C function or an odd callable: no signature to show
        return "(...)"


def _doc(task):
    lines = (inspect.getdoc(task.run) or task.__doc__ or "").strip().splitlines()
    return lines[0] if lines else ""


def own_types(celery):
    """The panel's registry: the embedded demo's task types (crawl_url...), offered only when the panel runs its
    embedded app; with a project attached its workers would refuse them, so only what they register is offered."""
    if not Target.of(celery.flask_app.config).embedded:
        return set()
    return {n for n in celery.tasks if not n.startswith("celery.")}


def registered(celery):
    """Every task type the embedded app has or a worker reports, with who has it."""
    by_worker = {}
    for row in workers.rows():
        for name in row.registered or []:
            by_worker.setdefault(name, []).append(row.name)
    names = own_types(celery) | set(by_worker)
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
        return own_types(celery)
    return {t["name"] for t in registered(celery) if t["workers"]} | set(HOUSEKEEPING_TASKS)


def require_known(celery, name):
    if name.startswith("celery.") or not any(t["name"] == name for t in registered(celery)):
        raise NotFound(f"no task type named {name} is registered with the panel or any worker")


def send(celery, name, args, kwargs, queue=None, **later):
    """Send one run (to `queue`, else the task type's own), now or later; its row is written like every other run's.

    `later`: countdown, eta, expires, priority as the request gave them (see timing).
    """
    require_known(celery, name)
    options = timing(**later, max_s=celery.flask_app.config["SEND_LATER_MAX_S"])
    return publish.send(celery, name, args, kwargs, queue=queue or None, **options).id


def _moment(field, text):
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)
    except ValueError as exc:  # the pattern passed, the calendar did not (a 31st of February)
        raise ValidationError(field, f"is not a real time: {exc}") from exc


def timing(countdown=None, eta=None, expires=None, priority=None, max_s=1500.0, now=None):
    """Celery's send options: the start as an eta (a countdown counts from now), the expiry after it, the priority.

    The start is bounded by max_s: a worker holds an early message unacknowledged until it is due, and the broker
    takes it back past its own limit (see SEND_LATER_MAX_S).
    """
    now = now or datetime.now(timezone.utc)
    start = now + timedelta(seconds=countdown) if countdown is not None else eta and _moment("eta", eta)
    field = "countdown" if countdown is not None else "eta"
    if start and start <= now:
        raise ValidationError(field, f"must be in the future (it is now {iso(now, 'seconds')})")
    if start and (start - now).total_seconds() > max_s:
        raise ValidationError(field, f"must be at most {max_s:g} seconds from now (SEND_LATER_MAX_S)")
    options = {"eta": start} if start else {}
    if expires is not None:
        ends = now + timedelta(seconds=expires) if isinstance(expires, (int, float)) else _moment("expires", expires)
        if ends <= (start or now):
            raise ValidationError("expires", "must be later than the start (now, or the countdown or eta)")
        options["expires"] = ends
    if priority is not None:
        options["priority"] = priority
    return options


def _to_workers(celery, task_name, command, arguments, timeout_s=workers.CONTROL_TIMEOUT_S):
    """One broadcast to the online workers that have the task (or have not said); each reply, or "no reply"."""
    now = workers.utcnow()
    online = [row for row in workers.rows() if workers.is_online(row, now)]
    for row in online:  # a worker without the task type logs an ERROR traceback: ask what it has before telling it
        if not row.registered:
            workers.refresh_info(celery, row.name)
    names = [row.name for row in workers.rows() if row.name in {r.name for r in online}
             and task_name in (row.registered or ())]
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
