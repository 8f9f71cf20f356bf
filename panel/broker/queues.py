"""Queues on the broker: which exist, how many messages wait in each, and purging one."""
import json
import re

import redis

from panel.broker import connection
from panel.cluster import workers
from panel.errors import BrokerDown, NotFound, ValidationError

QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:@-]{1,200}$")
# kombu's Redis transport (kombu/transport/redis.py): a queue is a list per priority step, named
# "<queue>" for step 0 and "<queue>\x06\x16<step>" for the others; bindings are sets per exchange.
PRIORITY_SEP = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)
BINDING_KEY = "_kombu.binding.{}"
SOCKET_TIMEOUT_S = 2.0


def _transport_options(celery):
    options = celery.conf.broker_transport_options or {}
    steps = options.get("priority_steps") or PRIORITY_STEPS
    return options.get("global_keyprefix") or "", options.get("sep") or PRIORITY_SEP, steps


def priority_keys(name, prefix="", sep=PRIORITY_SEP, steps=PRIORITY_STEPS):
    """Every Redis list that holds messages of one queue."""
    return [f"{prefix}{name}"] + [f"{prefix}{name}{sep}{step}" for step in steps if step]


def _client(broker_url):
    if not broker_url.startswith(("redis://", "rediss://", "unix://")):
        raise BrokerDown("queue lengths are read from Redis; this broker is not Redis")
    return redis.Redis.from_url(broker_url, socket_connect_timeout=SOCKET_TIMEOUT_S, socket_timeout=SOCKET_TIMEOUT_S)


def _bound_queues(client, celery, prefix, sep):
    """Queues bound to task exchanges: a queue a sender created is listed though no worker consumes it."""
    internal = {celery.conf.event_exchange}
    names = set()
    for key in client.scan_iter(match=prefix + BINDING_KEY.format("*"), count=500):
        exchange = key.decode("utf-8", "replace")[len(prefix + BINDING_KEY.format("")):]
        if exchange in internal or exchange.endswith(".pidbox"):  # events and remote control, not tasks
            continue
        for member in client.smembers(key):
            parts = member.decode("utf-8", "replace").split(sep)
            if len(parts) == 3 and parts[2]:
                names.add(parts[2])
    return names


def _consumers():
    """Queue name -> the workers whose last reply said they consume it."""
    out = {}
    for row in workers.rows():
        for name in row.queues or []:
            out.setdefault(name, []).append(row.name)
    return out


def lengths(celery, broker_url, configured=""):
    """Each known queue with its waiting messages (all priority steps), in one Redis round trip."""
    prefix, sep, steps = _transport_options(celery)
    consumers = _consumers()
    client = _client(broker_url)
    try:
        names = {q.strip() for q in configured.split(",") if q.strip()} | set(consumers)
        names |= _bound_queues(client, celery, prefix, sep)
        ordered = sorted(names)
        with client.pipeline(transaction=False) as pipe:
            for name in ordered:
                for key in priority_keys(name, prefix, sep, steps):
                    pipe.llen(key)
            sizes = pipe.execute()
    except redis.RedisError as exc:
        raise BrokerDown(f"could not read queue lengths: {exc}") from exc
    finally:
        client.close()
    per_queue = len(priority_keys("q", prefix, sep, steps))
    return [{"name": name, "messages": sum(sizes[i * per_queue:(i + 1) * per_queue]),
             "consumers": sorted(consumers.get(name, []))} for i, name in enumerate(ordered)]


def purge(celery, broker_url, name, data, configured=""):
    """Remove every waiting message of one queue (confirm required); returns how many were removed."""
    if not isinstance(data, dict) or data.get("confirm") is not True:
        raise ValidationError("confirm", 'purging deletes messages for good: send {"confirm": true}')
    if not QUEUE_NAME.match(name):
        raise NotFound(f"no queue named {name}")
    connection.ping(broker_url)
    if name not in {q["name"] for q in lengths(celery, broker_url, configured)}:
        raise NotFound(f"no queue named {name} is known to the broker, the workers or WORKER_QUEUES")
    try:
        with celery.connection_for_write() as conn:
            return int(conn.default_channel.queue_purge(name) or 0)
    except Exception as exc:  # kombu raises the transport's own errors
        raise BrokerDown(f"could not purge {name}: {exc}") from exc


def oldest_waiting(celery, broker_url, configured=""):
    """The task id and queue of the message waiting longest in any known queue (kombu pops the right end)."""
    prefix, sep, steps = _transport_options(celery)
    client = _client(broker_url)
    try:
        names = {q.strip() for q in configured.split(",") if q.strip()} | _bound_queues(client, celery, prefix, sep)
        found = []
        for name in sorted(names):
            for key in priority_keys(name, prefix, sep, steps):
                raw = client.lindex(key, -1)
                if raw:
                    found.append((name, raw))
    except redis.RedisError as exc:
        raise BrokerDown(f"could not read the queues: {exc}") from exc
    finally:
        client.close()
    out = []
    for name, raw in found:
        try:
            headers = json.loads(raw).get("headers") or {}
        except (ValueError, AttributeError):
            continue
        out.append({"queue": name, "task_id": headers.get("id"), "task": headers.get("task")})
    return out
