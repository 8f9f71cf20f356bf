"""Queues on the broker through kombu's channel: how many messages wait, purging, the longest waiting message."""
import ast
import base64
import json
from contextlib import contextmanager

from kombu import Queue
from kombu.exceptions import ChannelError

from panel.errors import BrokerDown

CONNECT_TIMEOUT_S = 2.0
SHOWN_MAX_CHARS = 200  # args and kwargs in a peek: enough to tell runs apart, short enough to read
LITERAL_MAX_CHARS = 20_000  # a repr longer than this is shown as it is rather than parsed
ACCEPTED = ["json", "pickle", "yaml", "msgpack"]


@contextmanager
def broker_connection(celery, what):
    """A broker connection for one look; any transport error becomes BrokerDown naming what failed."""
    try:
        with celery.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=CONNECT_TIMEOUT_S)
            yield conn
    except BrokerDown:
        raise
    except Exception as exc:  # kombu raises each transport's own errors
        raise BrokerDown(f"could not {what}: {exc}") from exc


def is_redis(conn):
    return conn.transport.driver_type == "redis"


def _size(conn, name):
    """Messages waiting in one queue (every priority step); a queue the broker does not have holds none."""
    channel = conn.channel()
    try:
        return channel.queue_declare(queue=name, passive=True).message_count
    except ChannelError:  # passive: "no such queue" (on AMQP it also closes this channel)
        return 0
    finally:
        try:
            channel.close()
        except Exception:  # already closed by the broker
            pass


def sizes(celery, names):
    """{queue: messages waiting} by a passive declare per queue: no consumer, nothing moved."""
    with broker_connection(celery, "read queue lengths") as conn:
        return {name: _size(conn, name) for name in names}


def bound(celery):
    """Queues the broker binds to task exchanges, so a queue a sender made is known though nobody consumes it.

    Only Redis keeps bindings where a client can list them (kombu's binding sets); other brokers: none.
    """
    internal = {celery.conf.event_exchange}
    with broker_connection(celery, "list the queues") as conn:
        if not is_redis(conn):
            return set()
        channel = conn.default_channel
        prefix = getattr(channel, "global_keyprefix", "") or ""
        head = channel.keyprefix_queue.split("%s")[0]
        names = set()
        with channel.conn_or_acquire() as client:
            for key in client.scan_iter(match=f"{prefix}{head}*", count=500):
                exchange = key.decode("utf-8", "replace")[len(prefix + head):]
                if exchange in internal or exchange.endswith(".pidbox"):  # events and remote control
                    continue
                names.update(entry[-1] for entry in channel.get_table(exchange) if entry and entry[-1])
        return names


def purge(celery, name):
    """Remove every waiting message of one queue; returns (how many went, the task ids they carried)."""
    try:
        with celery.connection_for_write() as conn:
            channel = conn.default_channel
            raws = _take_all_redis(channel, name) if is_redis(conn) else _take_all(channel, name)
    except BrokerDown:
        raise
    except Exception as exc:  # kombu raises the transport's own errors
        raise BrokerDown(f"could not purge {name}: {exc}") from exc
    return len(raws), [task_id for task_id in map(_task_id, raws) if task_id]


def _take_all_redis(channel, name):
    """Read and delete every priority list of the queue in one transaction: what was read is what went."""
    keys = tail_keys(channel, name)
    with channel.conn_or_acquire() as client, client.pipeline(transaction=True) as pipe:
        for key in keys:
            pipe.lrange(key, 0, -1)
        pipe.delete(*keys)
        lists = pipe.execute()[:len(keys)]
    return [raw for items in lists for raw in items]


def _take_all(channel, name):
    """Any other transport: take the messages one by one and acknowledge them (that removes them)."""
    queue, taken = Queue(name, no_declare=True).bind(channel), []
    while (message := queue.get(no_ack=False, accept=["json", "pickle", "yaml", "msgpack"])) is not None:
        taken.append({"headers": message.headers or {}})
        message.ack()
    return taken


def _task_id(raw):
    """The task id a message carries (its headers, Celery's message protocol 2)."""
    if isinstance(raw, dict):
        return (raw.get("headers") or {}).get("id")
    try:
        return (json.loads(raw).get("headers") or {}).get("id")
    except (ValueError, AttributeError, RecursionError):
        return None


def tail_keys(channel, name):
    """The Redis lists of one queue, one per priority step, named as kombu names them."""
    prefix = getattr(channel, "global_keyprefix", "") or ""
    return [f"{prefix}{name}{channel.sep}{step}" if step else f"{prefix}{name}" for step in channel.priority_steps]


def oldest(celery, names):
    """[(queue, task id, task type)] of the next message of each queue (Redis; kombu pops the right end)."""
    found = []
    with broker_connection(celery, "read the queues") as conn:
        if not is_redis(conn):
            return []
        channel = conn.default_channel
        with channel.conn_or_acquire() as client:
            for name in sorted(names):
                found += [(name, raw) for raw in (client.lindex(k, -1) for k in tail_keys(channel, name)) if raw]
    out = []
    for name, raw in found:
        try:
            headers = json.loads(raw).get("headers") or {}
        except (ValueError, AttributeError, RecursionError):
            continue
        out.append({"queue": name, "task_id": headers.get("id"), "task": headers.get("task")})
    return out


def peek(celery, name, limit):
    """The first `limit` waiting messages of a queue, in the order a worker takes them; nothing moved or taken."""
    with broker_connection(celery, f"read the messages of {name}") as conn:
        if is_redis(conn):
            return [_described_redis(raw, at) for at, raw in enumerate(_peek_redis(conn.default_channel, name, limit))]
        return _peek_amqp(conn, name, limit)


def _peek_redis(channel, name, limit):
    """One transaction reads the right end of each priority list (kombu's BRPOP takes from there, step 0 first)."""
    keys = tail_keys(channel, name)
    with channel.conn_or_acquire() as client, client.pipeline(transaction=True) as pipe:
        for key in keys:
            pipe.lrange(key, -limit, -1)
        lists = pipe.execute()
    return [raw for items in lists for raw in reversed(items)][:limit]


def _peek_amqp(conn, name, limit):
    """basic_get without an ack, then close the channel: RabbitMQ puts every message back at its own place.

    AMQP 0-9-1 has no read that leaves a message where it is; the messages are held for the milliseconds of
    the look (marked redelivered), which RabbitMQ's management plugin would do the same way with its own get.
    """
    channel = conn.channel()
    try:
        queue = Queue(name, no_declare=True).bind(channel)
        held = []
        while len(held) < limit and (message := queue.get(no_ack=False, accept=ACCEPTED)) is not None:
            held.append(message)
        return [_described(message.headers or {}, message.properties, _body_of(message), at, len(message.body or b""))
                for at, message in enumerate(held)]
    except ChannelError:  # the broker has no such queue (yet): nothing waits in it
        return []
    finally:
        try:
            channel.close()  # un-acknowledged: all of them go back, in their order
        except Exception:  # already closed by the broker
            pass


def _body_of(message):
    body = message.body
    return body.decode(message.content_encoding or "utf-8", "replace") if isinstance(body, bytes) else body


def _described_redis(raw, at):
    try:
        message = json.loads(raw)
        props = message.get("properties") or {}
        body = message.get("body") or ""
        if props.get("body_encoding") == "base64":
            body = base64.b64decode(body)
            return _described(message.get("headers") or {}, props, body.decode("utf-8", "replace"), at, len(body))
        return _described(message.get("headers") or {}, props, body, at, len(str(body).encode("utf-8", "replace")))
    except (ValueError, AttributeError, TypeError):  # not a kombu message: say so rather than hide it
        return _described({}, {}, raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw), at, len(raw))
    except RecursionError:  # the envelope itself is nested too deep to read: not even its headers
        return _described({}, {}, "", at, len(raw), "the message is nested deeper than the JSON parser reads")


def _described(headers, properties, body, at, size, why=None):
    """Task type, id, args and kwargs cut to a readable length, ETA, expiry, retries, priority and size; a message
    that cannot be decoded (`why`) is shown as such with what its headers say, and the others are still read."""
    args = kwargs = ""
    if why is None:
        try:
            args, kwargs = _json_args(headers, body)
        except RecursionError:  # json.loads of a body nested thousands deep: this message is unreadable, not the queue
            why = "its body is nested deeper than the JSON parser reads"
    priority = properties.get("priority")
    return {"position": at + 1, "task": _text(headers.get("task")), "id": _text(headers.get("id")),
            "args": _cut(str(args)), "kwargs": _cut(str(kwargs)), "eta": _text(headers.get("eta")),
            "expires": _text(headers.get("expires")), "retries": _whole(headers.get("retries")),
            "priority": priority if isinstance(priority, int) else None, "size": size,
            "undecodable": why and f"could not be decoded: {why}"}


def _json_args(headers, body):
    """Args and kwargs as JSON text, one notation for every message: the JSON body's own (protocol 2:
    [args, kwargs, ...]; protocol 1: {"args", "kwargs"}), else the sender's reprs read as JSON where they are
    literals (a tuple's "(0, 123)" is "[0, 123]"), else the reprs as they are."""
    try:
        decoded = json.loads(body)
        if isinstance(decoded, dict):
            decoded = [decoded["args"], decoded["kwargs"]]
        if isinstance(decoded[0], list) and isinstance(decoded[1], dict):
            return json.dumps(decoded[0], ensure_ascii=False), json.dumps(decoded[1], ensure_ascii=False)
    except (ValueError, TypeError, LookupError):
        pass
    args, kwargs = headers.get("argsrepr"), headers.get("kwargsrepr")
    if args is None and kwargs is None:  # neither JSON nor a repr (pickle, say): the body as it is
        return _cut(str(body)), ""
    return literal_json(args, list), literal_json(kwargs, dict)


def literal_json(text, kind):
    """A Python repr of a list, tuple or dict as JSON text (tuples become lists); the text itself when it is not a
    plain literal (a cut repr ending in "...", an object's repr)."""
    if not isinstance(text, str) or len(text) > LITERAL_MAX_CHARS:
        return "" if text is None else str(text)
    try:
        value = ast.literal_eval(text)
        value = list(value) if isinstance(value, tuple) else value
        return json.dumps(value, ensure_ascii=False) if isinstance(value, kind) else text
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text


def _cut(text, limit=SHOWN_MAX_CHARS):
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _text(value):
    return None if value is None else _cut(str(value))


def _whole(value):
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def waiting_ids(celery, names, limit=100_000):
    """Task ids whose message waits in these queues or is delivered but unacknowledged (Redis: the lists and the
    `unacked` hash, read in one transaction, nothing moved); None when that cannot be read whole (another broker,
    or more than `limit` messages)."""
    with broker_connection(celery, "read the waiting messages") as conn:
        if not is_redis(conn):
            return None
        channel = conn.default_channel
        keys = [key for name in sorted(names) for key in tail_keys(channel, name)]
        unacked = channel.unacked_key  # kombu's client adds any global key prefix itself
        with channel.conn_or_acquire() as client:
            if sum(client.llen(key) for key in keys) + client.hlen(unacked) > limit:
                return None
            with client.pipeline(transaction=True) as pipe:
                for key in keys:
                    pipe.lrange(key, 0, -1)
                pipe.hvals(unacked)
                lists = pipe.execute()
    raws = [raw for items in lists[:-1] for raw in items]
    delivered = [_first_of(raw) for raw in lists[-1]]
    return {task_id for task_id in map(_task_id, raws + delivered) if task_id}


def _first_of(raw):
    """An `unacked` entry is [message, exchange, routing key]: the message."""
    try:
        return json.loads(raw)[0]
    except (ValueError, LookupError, TypeError, RecursionError):
        return None
