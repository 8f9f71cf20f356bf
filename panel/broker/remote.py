"""Celery remote control and inspect: every call addressed (a destination) or bounded (a limit), with a timeout.

The one exception is revoke without a worker: it must reach every worker, present and future (they keep
revokes in their --statedb), so it is broadcast and no reply is awaited.
"""
from concurrent.futures import ThreadPoolExecutor

NO_REPLY = object()
# The panel's own remote-control commands, registered in the embedded app's workers (panel/worker_commands.py).
DETAIL = "panel_detail"
RESUME = "panel_resume_queue"
OWN_COMMANDS = (DETAIL, RESUME)
# A worker whose app imports the panel's embedded tasks was built by panel/celery_setup.py, which registers
# OWN_COMMANDS; any other worker logs an ERROR traceback for a command it does not have, so it never gets one.
OWN_APP_MODULE = "panel.embedded"
TIMEOUT_S = 1.0
DISCOVERY_LIMIT = 64  # workers a discovery ping waits for at most; its timeout bounds it anyway
_parallel = ThreadPoolExecutor(max_workers=6, thread_name_prefix="inspect")
_own_app = {}  # worker -> (its instance when known, e.g. its pid; does it have OWN_COMMANDS)


def _inspect(celery, workers, timeout_s):
    return celery.control.inspect(destination=list(workers), timeout=timeout_s, limit=len(workers))


def ping_worker(celery, nodename, timeout_s=TIMEOUT_S):
    """True when the named worker answers a ping addressed to it alone."""
    replies = celery.control.ping(destination=[nodename], timeout=timeout_s, limit=1) or []
    return any(nodename in reply for reply in replies)


def answering(celery, known=(), timeout_s=TIMEOUT_S):
    """Node names of the workers that answer: the known ones asked by name, else a discovery ping."""
    if known:
        replies = celery.control.ping(destination=list(known), timeout=timeout_s, limit=len(known)) or []
    else:
        replies = celery.control.ping(timeout=timeout_s, limit=DISCOVERY_LIMIT) or []
    return sorted(name for reply in replies for name in reply)


def ask(celery, workers, method, *args, timeout_s=TIMEOUT_S):
    """{worker: reply} of one inspect method (active, reserved, scheduled, stats...) asked of these workers."""
    if not workers:
        return {}
    return getattr(_inspect(celery, workers, timeout_s), method)(*args) or {}


def active_ids(celery, worker, timeout_s=TIMEOUT_S):
    """Task ids the named worker is executing now, or None when it did not answer."""
    replies = ask(celery, [worker], "active", timeout_s=timeout_s)
    if worker not in replies:
        return None
    return {task["id"] for task in replies[worker] or []}


def executing_pid(celery, worker, task_id, timeout_s=TIMEOUT_S):
    """The pool process running task_id on worker; None when it runs no more, NO_REPLY when silent."""
    replies = ask(celery, [worker], "active", timeout_s=timeout_s)
    if worker not in replies:
        return NO_REPLY
    return next((task.get("worker_pid") for task in replies[worker] or [] if task.get("id") == task_id), None)


def pool_pids(celery, worker, timeout_s=TIMEOUT_S):
    """The worker's pool processes as it reports them (works for remote workers), or None."""
    replies = ask(celery, [worker], "stats", timeout_s=timeout_s)
    if worker not in replies:
        return None
    return set(replies[worker].get("pool", {}).get("processes") or [])


def conf(celery, worker, timeout_s=TIMEOUT_S):
    """The worker's own settings as `inspect conf` gives them (a standard command), or None when it is silent."""
    reply = ask(celery, [worker], "conf", timeout_s=timeout_s).get(worker)
    return reply if isinstance(reply, dict) else None


def knows_own_commands(celery, worker, instance=None, timeout_s=TIMEOUT_S):
    """True only when the worker's own conf says its app is the panel's; remembered per worker (and instance).

    A silent worker is not remembered (asked again next time) and gets no command of ours meanwhile.
    """
    known = _own_app.get(worker)
    if known is not None and (instance is None or known[0] == instance):
        return known[1]
    settings = conf(celery, worker, timeout_s)
    if settings is None:
        return False
    knows = OWN_APP_MODULE in (settings.get("imports") or ()) or OWN_APP_MODULE in (settings.get("include") or ())
    _own_app[worker] = (instance, knows)
    return knows


def parts(celery, worker, calls, timeout_s=TIMEOUT_S, instance=None):
    """{part: reply} of several inspect calls to one worker; a part without a reply in time is missing.

    The embedded app's workers answer all parts in one round trip (worker_commands.py); any other worker
    is asked part by part, in parallel, with standard commands only.
    """
    if knows_own_commands(celery, worker, instance, timeout_s):
        info_items = list(calls.get("registered", ("registered", ()))[1])
        together = command(celery, [worker], DETAIL, {"taskinfoitems": info_items}, timeout_s).get(worker)
        if isinstance(together, dict) and "error" not in together:
            return {part: together[part] for part in calls if part in together}

    def one(item):
        part, (method, args) = item
        return part, ask(celery, [worker], method, *args, timeout_s=timeout_s).get(worker, NO_REPLY)
    return {part: reply for part, reply in _parallel.map(one, calls.items()) if reply is not NO_REPLY}


def revoke(celery, task_ids, terminate=False, sig="SIGTERM", worker=None, timeout_s=TIMEOUT_S):
    """Revoke runs: addressed to one worker (True when it replied), or broadcast to all without waiting."""
    if worker:
        replies = celery.control.revoke(task_ids, terminate=terminate, signal=sig, destination=[worker],
                                        reply=True, timeout=timeout_s, limit=1) or []
        return any(worker in reply for reply in replies)
    celery.control.revoke(task_ids, terminate=terminate, signal=sig)
    return True


def revoke_everywhere(celery, task_ids, workers, timeout_s=TIMEOUT_S):
    """Revoke on the workers that answer (their acknowledgements are returned), and on any other by broadcast.

    A worker keeps a revoke in its --statedb across restarts; a revoke no worker received is lost.
    """
    acked = []
    if workers:
        replies = celery.control.revoke(task_ids, destination=list(workers), reply=True, timeout=timeout_s,
                                        limit=len(workers)) or []
        acked = sorted(name for reply in replies for name in reply)
    celery.control.revoke(task_ids)
    return acked


def command(celery, names, name_of_command, arguments=None, timeout_s=2.0):
    """A control command to these workers only; {worker: its reply} for those that answered in time.

    A command of the panel's own goes only to the workers that have it (knows_own_commands); the others are
    left out, as if silent.
    """
    if name_of_command in OWN_COMMANDS:
        names = [name for name in names if knows_own_commands(celery, name, timeout_s=min(timeout_s, TIMEOUT_S))]
        if not names:
            return {}
    replies = celery.control.broadcast(name_of_command, arguments=arguments or {}, destination=list(names),
                                       reply=True, timeout=timeout_s, limit=len(names)) or []
    return {worker: reply for answer in replies for worker, reply in answer.items() if worker in names}


def shutdown(celery, worker):
    """Warm shutdown of one worker (it never replies: it is gone)."""
    celery.control.broadcast("shutdown", destination=[worker])
