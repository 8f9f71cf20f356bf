"""The cluster's queues: every queue the broker, the workers or the settings know, with its waiting messages."""
import re

from panel.broker import connection, queues
from panel.cluster import paused, workers  # noqa: F401  (paused: its table is created with the others)
from panel.errors import NotFound
from panel.runlog import outcomes

QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:@-]{1,200}$")


def _consumers():
    """Queue name -> the workers whose last reply said they consume it."""
    out = {}
    for row in workers.rows():
        for name in row.queues or []:
            out.setdefault(name, []).append(row.name)
    return out


def _configured(configured):
    return {name.strip() for name in (configured or "").split(",") if name.strip()}


def known(celery, configured="", consumers=None):
    """Queue names from the settings, the workers' replies and the broker's own bindings."""
    consumers = _consumers() if consumers is None else consumers
    return _configured(configured) | set(consumers) | queues.bound(celery)


def lengths(celery, configured=""):
    """Each known queue with its waiting messages and its consumers, by name."""
    consumers = _consumers()
    sizes = queues.sizes(celery, sorted(known(celery, configured, consumers)))
    return [{"name": name, "messages": count, "consumers": sorted(consumers.get(name, []))}
            for name, count in sizes.items()]


def purge(celery, broker_url, name, configured=""):
    """Remove every waiting message of one known queue, and end their runs; returns how many were removed."""
    if not QUEUE_NAME.match(name):
        raise NotFound(f"no queue named {name}")
    connection.ping(broker_url)
    if name not in known(celery, configured):
        raise NotFound(f"no queue named {name} is known to the broker, the workers or WORKER_QUEUES")
    removed, task_ids = queues.purge(celery, name)
    outcomes.end(task_ids, outcomes.purged(name))  # those runs will not run: the log says so
    return removed


def oldest_waiting(celery, configured=""):
    """The next message of every queue the settings or the broker know (not the workers: a cheap look)."""
    return queues.oldest(celery, _configured(configured) | queues.bound(celery))
