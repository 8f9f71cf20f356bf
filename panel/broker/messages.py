"""One waiting message at a time: take a message out of its queue by task id, and publish one again as it was.

The quarantine uses it: a message that kills the worker is taken out (from the queue, or from Redis' set of
messages delivered and not acknowledged) and kept; a requeue publishes the very same bytes and headers.
"""
import base64
import json
from dataclasses import asdict, dataclass

from kombu import Producer, Queue

from panel.broker.queues import broker_connection, is_redis, tail_keys
from panel.errors import BrokerDown

SCAN_CHUNK = 1000
SCAN_MAX = 200_000  # messages looked at per queue before giving up: a bound on a look under the control lock
AMQP_LOOK_MAX = 10_000  # messages held back (and then put back) while looking for one on AMQP
KEPT_PROPERTIES = ("correlation_id", "reply_to", "priority", "delivery_mode")
NOT_READ = "not read"  # take_waiting on a broker whose queues cannot be searched by task id


@dataclass(frozen=True)
class Envelope:
    """A message as the broker held it: where it waited, its body (base64) and how to read it."""

    queue: str
    body_b64: str
    content_type: str
    content_encoding: str
    headers: dict
    properties: dict

    @property
    def task_id(self):
        return self.headers.get("id")

    def as_dict(self):
        return asdict(self)


def _from_redis(raw, queue):
    """kombu's Redis form: a JSON object with the body base64-encoded and delivery details in its properties."""
    message = json.loads(raw)
    props = message.get("properties") or {}
    body = message.get("body") or ""
    if props.get("body_encoding") != "base64":
        body = base64.b64encode(body.encode() if isinstance(body, str) else body).decode()
    return Envelope(queue, body, message.get("content-type") or "application/json",
                    message.get("content-encoding") or "utf-8", message.get("headers") or {},
                    {k: props[k] for k in KEPT_PROPERTIES if props.get(k) is not None})


def _carries(raw, task_id):
    """A cheap look before parsing: the id appears in the text, then in the headers."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if task_id not in text and json.dumps(task_id)[1:-1] not in text:  # kombu writes non-ASCII escaped
        return False
    try:
        message = json.loads(text)
        message = message[0] if isinstance(message, list) else message  # the unacked set keeps [message, ex, key]
        return (message.get("headers") or {}).get("id") == task_id
    except (ValueError, AttributeError, IndexError):
        return False


def _take_from_lists(client, channel, task_id, queues):
    """LREM the exact message from its queue's lists (atomic against a worker's BRPOP); None when not there."""
    for queue in queues:
        for key in tail_keys(channel, queue):
            for start in range(0, SCAN_MAX, SCAN_CHUNK):
                chunk = client.lrange(key, start, start + SCAN_CHUNK - 1)
                found = next((raw for raw in chunk if _carries(raw, task_id)), None)
                if found is not None:
                    return _from_redis(found, queue) if client.lrem(key, 1, found) else None
                if len(chunk) < SCAN_CHUNK:
                    break
    return None


def _take_redis(channel, task_id, queues):
    """LREM the exact message from its queue's lists, or drop it from the unacked set; None when not there."""
    prefix = getattr(channel, "global_keyprefix", "") or ""
    with channel.conn_or_acquire() as client:
        found = _take_from_lists(client, channel, task_id, queues)
        if found is not None:
            return found
        # kombu's client prefixes HDEL and ZREM keys itself (a global_keyprefix), but not HSCAN's
        for tag, raw in client.hscan_iter(prefix + channel.unacked_key, count=500):
            if _carries(raw, task_id):
                message, _exchange, routing_key = json.loads(raw)
                if not client.hdel(channel.unacked_key, tag):
                    return None  # a restore moved it meanwhile: look again on the next death
                client.zrem(channel.unacked_index_key, tag)
                return _from_redis(json.dumps(message), routing_key or queues[0])
    return None


def _take_amqp(channel, task_id, queues):
    """Get messages until the one is found; ack it, and give every other back (the broker keeps their order)."""
    for name in queues:
        queue, held = Queue(name, no_declare=True).bind(channel), []
        try:
            for _ in range(AMQP_LOOK_MAX):
                message = queue.get(no_ack=False, accept=["json", "pickle", "yaml", "msgpack"])
                if message is None:
                    break
                if (message.headers or {}).get("id") == task_id:
                    props = {k: message.properties[k] for k in KEPT_PROPERTIES if message.properties.get(k) is not None}
                    body = message.body  # py-amqp hands text bodies over decoded
                    body = body.encode(message.content_encoding or "utf-8") if isinstance(body, str) else body
                    envelope = Envelope(name, base64.b64encode(body).decode(), message.content_type,
                                        message.content_encoding, dict(message.headers), props)
                    message.ack()
                    return envelope
                held.append(message)
        finally:
            for message in held:
                message.requeue()
    return None


def take(celery, task_id, queues):
    """Take the message carrying this task id out of the broker (the first of `queues` that holds it)."""
    names = list(dict.fromkeys(q for q in queues if q))
    with broker_connection(celery, f"take message {task_id} out of its queue") as conn:
        channel = conn.default_channel
        return (_take_redis if is_redis(conn) else _take_amqp)(channel, task_id, names)


def take_waiting(celery, task_id, queues):
    """Take a message that still waits in its queue out of it, so no worker can ever receive it (a revoke that
    cannot be lost); a message a worker already holds is left to the worker. The Envelope taken, None when it
    waits in none of these queues, NOT_READ when the broker is not Redis (AMQP has no removal by id)."""
    names = list(dict.fromkeys(q for q in queues if q))
    with broker_connection(celery, f"take message {task_id} out of its queue") as conn:
        if not is_redis(conn):
            return NOT_READ
        channel = conn.default_channel
        with channel.conn_or_acquire() as client:
            return _take_from_lists(client, channel, task_id, names)


def take_all_waiting(celery, task_ids, queues):
    """take_waiting for many runs at once, one pass over each list: {task id: the queue it was taken out of} for
    those still waiting (bounded by SCAN_MAX a list), NOT_READ when the broker is not Redis."""
    wanted, taken = set(task_ids), {}
    with broker_connection(celery, f"take {len(wanted)} message(s) out of their queues") as conn:
        if not is_redis(conn):
            return NOT_READ
        channel = conn.default_channel
        with channel.conn_or_acquire() as client:
            for queue in dict.fromkeys(q for q in queues if q):
                for key in tail_keys(channel, queue):
                    found = _carrying(client, key, wanted - set(taken))
                    removals = client.pipeline(transaction=False)  # one round trip for a list's removals
                    for raw, _ in found:
                        removals.lrem(key, 1, raw)
                    for (_, task_id), removed in zip(found, removals.execute() if found else ()):
                        if removed:  # 0: a worker took it meanwhile
                            taken[task_id] = queue
    return taken


def _carrying(client, key, wanted):
    """(message, task id) of the messages of one list that carry one of the wanted ids."""
    found = []
    for start in range(0, SCAN_MAX if wanted else 0, SCAN_CHUNK):
        chunk = client.lrange(key, start, start + SCAN_CHUNK - 1)
        for raw in chunk:
            try:
                task_id = (json.loads(raw).get("headers") or {}).get("id")
            except (ValueError, AttributeError):
                continue
            if task_id in wanted:
                found.append((raw, task_id))
        if len(chunk) < SCAN_CHUNK:
            break
    return found


def give_back(celery, task_ids):
    """Put messages a dead consumer left delivered and unacknowledged back at the head of their queues, as kombu's
    own restore does (Redis only: RabbitMQ requeues a dead connection's messages itself). Without it a message a
    SIGKILLed worker held (reserved, or waiting for its ETA) stays out of every queue until the visibility timeout,
    an hour by default. Returns the ids given back."""
    wanted, back = set(task_ids), []
    if not wanted:
        return back
    with broker_connection(celery, f"give {len(wanted)} message(s) back to their queues") as conn:
        if not is_redis(conn):
            return back
        channel = conn.default_channel
        prefix = getattr(channel, "global_keyprefix", "") or ""
        with channel.conn_or_acquire() as client:
            for tag, raw in list(client.hscan_iter(prefix + channel.unacked_key, count=500)):
                task_id = next((t for t in wanted if _carries(raw, t)), None)
                if task_id is not None:
                    channel.qos.restore_by_tag(tag, client)  # one transaction: a concurrent restore finds nothing
                    back.append(task_id)
    return back


def publish(celery, envelope):
    """Publish a kept message again, the same body and headers, to the queue it was taken from."""
    try:
        with celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2.0)
            Producer(conn).publish(base64.b64decode(envelope.body_b64), exchange="", routing_key=envelope.queue,
                                   content_type=envelope.content_type, content_encoding=envelope.content_encoding,
                                   headers=envelope.headers, retry=False, **envelope.properties)
    except Exception as exc:  # kombu raises each transport's own errors
        raise BrokerDown(f"could not publish message {envelope.task_id} to {envelope.queue}: {exc}") from exc
