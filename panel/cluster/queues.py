"""The cluster's queues: every queue the broker, the workers or the settings know, with its waiting messages.

A queue is paused by telling every worker that consumes it to stop (Celery's cancel_consumer) and resumed by
telling them to start again (add_consumer); the pause is kept in paused_queues, so a worker that comes online
later is told too (the cluster monitor calls reapply_pauses), and the embedded app's worker reads it at start.
"""
import logging
import re
import time

from panel.broker import connection, queues, remote
from panel.cluster import paused, workers
from panel.errors import NotFound
from panel.target import Target

log = logging.getLogger("panel.queues")
QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:@-]{1,200}$")
REDIS_BRPOP_S = 1.0  # kombu's Redis transport waits this long in one read (brpop_timeout)


def _consumers():
    """Queue name -> the workers whose last reply said they consume it (a paused queue stays theirs)."""
    out = {}
    for row in workers.rows():
        for name in row.queues or []:
            out.setdefault(name, []).append(row.name)
    return out


def _configured(configured):
    return {name.strip() for name in (configured or "").split(",") if name.strip()}


def known(celery, configured="", consumers=None):
    """Queue names from the settings, the workers' replies, the pauses and the broker's own bindings."""
    consumers = _consumers() if consumers is None else consumers
    return _configured(configured) | set(consumers) | paused.names() | queues.bound(celery)


def lengths(celery, configured=""):
    """Each known queue with its waiting messages, its consumers and whether it is paused, by name."""
    consumers, held = _consumers(), paused.names()
    sizes = queues.sizes(celery, sorted(known(celery, configured, consumers)))
    return [{"name": name, "messages": count, "consumers": sorted(consumers.get(name, [])), "paused": name in held}
            for name, count in sizes.items()]


def require_known(celery, broker_url, name, configured=""):
    """404 for a name no queue can have or no one knows (the purge rule); 503 when the broker is away."""
    if not QUEUE_NAME.match(name):
        raise NotFound(f"no queue named {name}")
    connection.ping(broker_url)
    if name not in known(celery, configured):
        raise NotFound(f"no queue named {name} is known to the broker, the workers or WORKER_QUEUES")


def purge(celery, broker_url, name, configured=""):
    """Remove every waiting message of one known queue: how many, and the task ids they carried."""
    require_known(celery, broker_url, name, configured)
    return queues.purge(celery, name)


def oldest_waiting(celery, configured=""):
    """The next message of every queue the settings or the broker know (not the workers: a cheap look)."""
    return queues.oldest(celery, _configured(configured) | queues.bound(celery))


def _online_consumers(name):
    now = workers.utcnow()
    return [row.name for row in workers.rows() if name in (row.queues or []) and workers.is_online(row, now)]


def _told(name, action, targets, replies):
    """What the consumers answered: (answer, HTTP status): 200 all applied, 409 one refused, 504 one silent."""
    replies = {w: replies.get(w, workers.NO_REPLY) for w in targets}
    applied = sorted(w for w, r in replies.items() if isinstance(r, dict) and "ok" in r)
    refused = any(isinstance(r, dict) and "error" in r for r in replies.values())
    if not targets:
        said = ("no online worker consumes it now; a worker that comes online is told at once" if action == "paused"
                else "no online worker consumed it; a worker that comes online consumes it as usual")
    else:
        said = f"{len(applied)} of {len(targets)} consuming worker(s) applied it"
    code = 200 if len(applied) == len(targets) else 409 if refused else 504
    return {"status": "success" if code == 200 else "error", "queue": name, "paused": action == "paused",
            "applied_by": applied, "replies": replies, "message": f"Queue {name} {action}: {said}"}, code


def pause(celery, broker_url, name, configured="", by=""):
    """Keep the pause, then tell every online consumer to stop taking the queue's messages (they wait)."""
    require_known(celery, broker_url, name, configured)
    paused.record(name, by)
    targets = _online_consumers(name)
    replies = remote.command(celery, targets, "cancel_consumer", {"queue": name}, workers.CONTROL_TIMEOUT_S) \
        if targets else {}
    answer = _told(name, "paused", targets, replies)
    _until_stopped(celery, broker_url, name, answer[0]["applied_by"])
    return answer


def _until_stopped(celery, broker_url, name, applied):
    """Answer once the pause holds: cancel_consumer replies before the worker acts, and on Redis a read already
    waiting (BRPOP) may still take a message (kombu then puts it back at the far end, out of its turn)."""
    deadline = time.monotonic() + workers.CONTROL_TIMEOUT_S
    while applied and time.monotonic() < deadline:
        said = remote.ask(celery, applied, "active_queues", timeout_s=workers.INSPECT_TIMEOUT_S)
        if all(w in said and name not in {q.get("name") for q in said[w] or []} for w in applied):
            break
    if applied and connection.is_redis(broker_url):
        time.sleep(float((celery.conf.broker_transport_options or {}).get("brpop_timeout", REDIS_BRPOP_S)))


def resume(celery, broker_url, name, configured=""):
    """Forget the pause, then tell the consumers to take the queue again (add_consumer)."""
    require_known(celery, broker_url, name, configured)
    paused.forget(name)
    targets = _online_consumers(name)
    replies = remote.command(celery, targets, "add_consumer", {"queue": name}, workers.CONTROL_TIMEOUT_S) \
        if targets else {}
    _resume_held_back(celery, name, targets)
    return _told(name, "resumed", targets, replies)


def _resume_held_back(celery, name, consumers):
    """An embedded worker that started while the queue was paused skipped it without saying so: ask the rest."""
    if not Target.of(celery.flask_app.config).embedded:
        return
    now = workers.utcnow()
    others = [row.name for row in workers.rows() if workers.is_online(row, now) and row.name not in consumers]
    answered = (remote.command(celery, others, remote.RESUME, {"queue": name}, workers.CONTROL_TIMEOUT_S)
                if others else {})
    for worker, reply in answered.items():
        if isinstance(reply, dict) and reply.get("resumed"):
            workers.add_queue(worker, name)


def reapply_pauses(celery, name):
    """A worker came online: tell it to stop consuming every paused queue (a queue it does not consume is a no-op)."""
    for queue in sorted(paused.names()):
        reply = workers.control(celery, name, "cancel_consumer", {"queue": queue})
        log.info("pause of %s re-applied to %s: %s", queue, name, reply if reply is not None else workers.NO_REPLY)


def peek(celery, broker_url, name, configured="", limit=20):
    """The first `limit` waiting messages of a known queue in the order they will be taken, and how many wait."""
    require_known(celery, broker_url, name, configured)
    shown = queues.peek(celery, name, limit)
    waiting = queues.sizes(celery, [name])[name]
    return {"queue": name, "paused": paused.is_paused(name), "waiting": max(waiting, len(shown)),
            "shown": len(shown), "messages": shown}
