"""Workers of the cluster: the durable record, live detail from addressed inspect calls, and controls."""
import logging
from types import SimpleNamespace

from sqlalchemy import select, update

from models import WorkerNode, db, iso, utcnow
from panel import reads
from panel.broker import connection, remote
from panel.cluster import paused
from panel.database import reader
from panel.errors import NotFound
from panel.reads import PreparedRead

log = logging.getLogger("panel.workers")
nodes_t = WorkerNode.__table__
NO_REPLY = "no reply"
INSPECT_TIMEOUT_S = 1.0   # addressed with limit=1: a live worker answers in milliseconds
CONTROL_TIMEOUT_S = 2.0
STALE_BEATS = 3           # offline after this many missed heartbeats...
STALE_GRACE_S = 2.0       # ...plus this much for a slow broker or a busy panel
INFO_REFRESH_S = 60       # an unchanged reply is written back at most this often
CACHED_PARTS = ("stats", "active_queues", "registered")
RESIZING = ("autoscale", "pool_grow", "pool_shrink")
RESIZABLE_POOLS = ("prefork", "eventlet", "gevent")  # the pools with grow and shrink (solo and threads have none)
TASK_INFO = ("rate_limit", "time_limit", "soft_time_limit")
DETAIL_CALLS = {  # part of the detail -> (inspect method, its arguments)
    "stats": ("stats", ()), "active": ("active", ()), "reserved": ("reserved", ()), "scheduled": ("scheduled", ()),
    "registered": ("registered", TASK_INFO), "active_queues": ("active_queues", ()),
}


def is_online(row, now=None):
    """The one rule: online until an offline event, or STALE_BEATS heartbeats missed (plus a grace)."""
    if not row.online or row.last_heartbeat_at is None:
        return False
    age_s = ((now or utcnow()) - row.last_heartbeat_at).total_seconds()
    return age_s <= STALE_BEATS * (row.heartbeat_freq_s or 2.0) + STALE_GRACE_S


def pool_summary(pool):
    """Pool type and size from the cached stats part: prefork grows by processes, not max-concurrency."""
    if not pool:
        return {"type": None, "size": None}
    implementation = pool.get("implementation") or ""
    kind = implementation.split(":")[0].rsplit(".", 1)[-1] or None
    processes = pool.get("processes")
    size = len(processes) if isinstance(processes, list) and processes else pool.get("max-concurrency")
    return {"type": {"thread": "threads"}.get(kind, kind), "size": size, "max_concurrency": pool.get("max-concurrency"),
            "processes": processes or [], "autoscaler": pool.get("autoscaler")}


def as_dict(row, now=None):
    now = now or utcnow()
    online = is_online(row, now)
    age = (now - row.last_heartbeat_at).total_seconds() if row.last_heartbeat_at else None
    return {
        "name": row.name, "hostname": row.hostname, "pid": row.pid, "status": "online" if online else "offline",
        "online": online, "first_seen_at": iso(row.first_seen_at), "last_heartbeat_at": iso(row.last_heartbeat_at),
        "heartbeat_age_s": round(age, 3) if age is not None else None, "offline_at": iso(row.offline_at),
        "heartbeat_freq_s": row.heartbeat_freq_s, "sw_ver": row.sw_ver, "sw_sys": row.sw_sys,
        "active": row.active, "processed": row.processed, "succeeded": row.succeeded, "failed": row.failed,
        "loadavg": row.loadavg, "pool": pool_summary(row.pool), "queues": row.queues or [],
        "registered_count": len(row.registered or []), "info_at": iso(row.info_at),
    }


_ALL = PreparedRead(select(nodes_t).order_by(nodes_t.c.name), "Worker")


def rows():
    """Every worker row; read on a deferred transaction so it never waits for the monitor's writes (prepared: the
    workers list is polled)."""
    with reads.reading(db.engine) as conn:
        return _ALL.rows(conn)


def get_row(name):
    with reader(db.engine).connect() as conn:
        row = conn.execute(select(nodes_t).where(nodes_t.c.name == name)).first()
    if row is None:
        raise NotFound(f"no worker named {name} has been seen")
    return row


def list_workers():
    now = utcnow()
    return [as_dict(row, now) for row in rows()]


def live_info(celery, name, timeout_s=INSPECT_TIMEOUT_S, parts=tuple(DETAIL_CALLS), pid=None):
    """Every detail part asked of one worker in one go; a silent part is NO_REPLY."""
    got = remote.parts(celery, name, {part: DETAIL_CALLS[part] for part in parts}, timeout_s, instance=pid)
    return {part: got.get(part, NO_REPLY) for part in parts}


def task_name_of(entry):
    """'tests.add [rate_limit=10/m]' -> 'tests.add' (registered() with task info items)."""
    return entry.split(" [", 1)[0]


def cache_values(live):
    """What the worker just said about its pool, queues and tasks, as row values."""
    values = {}
    stats = live.get("stats")
    if isinstance(stats, dict):
        pool = {k: v for k, v in (stats.get("pool") or {}).items() if k != "writes"}
        values["pool"] = dict(pool, autoscaler=stats.get("autoscaler"))
    if isinstance(live.get("active_queues"), list):
        values["queues"] = sorted({q.get("name") for q in live["active_queues"] if q.get("name")})
    if isinstance(live.get("registered"), list):
        values["registered"] = sorted({task_name_of(entry) for entry in live["registered"]})
    return values


def refresh_cache(row, live, now):
    """Keep the replies in the row; written only when they changed or the cache is old (reads stay cheap)."""
    values = cache_values(live)
    if "queues" in values:  # a paused queue is still this worker's: resume gives it back
        values["queues"] = sorted(set(values["queues"]) | (set(row.queues or []) & paused.names()))
    changed = any(getattr(row, key) != value for key, value in values.items())
    fresh = row.info_at is not None and (now - row.info_at).total_seconds() < INFO_REFRESH_S
    if not values or (fresh and not changed):
        return row
    with db.engine.begin() as conn:
        conn.execute(update(nodes_t).where(nodes_t.c.name == row.name).values(info_at=now, **values))
    return SimpleNamespace(**dict(row._mapping, info_at=now, **values))


def refresh_info(celery, name):
    """Ask one worker for its pool, queues and tasks and keep them; True when it answered all three."""
    row = get_row(name)
    live = live_info(celery, name, parts=CACHED_PARTS, pid=row.pid)
    refresh_cache(row, live, utcnow())
    return all(live[part] != NO_REPLY for part in CACHED_PARTS)


def detail(celery, broker_url, name):
    """The row and what the worker answers now; the worker stays online by heartbeat even when silent."""
    row = get_row(name)
    connection.ping(broker_url)
    live = live_info(celery, name, pid=row.pid)
    now = utcnow()
    try:
        row = refresh_cache(row, live, now)
    except Exception:  # a busy database must not hide what the worker said
        log.exception("could not cache the info of %s", name)
    out = as_dict(row, now)
    out.update(live=live, no_reply=sorted(part for part, value in live.items() if value == NO_REPLY),
               registered=row.registered or [])
    return out


def control(celery, name, command, arguments=None, timeout_s=CONTROL_TIMEOUT_S):
    """Send a control command to one worker and return its own reply dict, or None when it is silent.

    A command the worker would raise on (an ERROR traceback in its log) is not sent: the reply says why.
    """
    why = refusal(celery, name, command, arguments or {})
    if why is NO_REPLY:
        return None
    if why:
        return {"error": why, "sent": False}
    return remote.command(celery, [name], command, arguments, timeout_s).get(name)


def refusal(celery, name, command, arguments):
    """Why the worker would raise on this command, from its own conf or stats (standard inspect calls); None
    when it would not, NO_REPLY when it is silent."""
    if command == "pool_restart":
        settings = remote.conf(celery, name, INSPECT_TIMEOUT_S)
        if settings is None:
            return NO_REPLY
        return None if settings.get("worker_pool_restarts") else \
            "not sent: pool restarts are off in its app (worker_pool_restarts = True turns them on)"
    if command not in RESIZING:
        return None
    stats = remote.ask(celery, [name], "stats", timeout_s=INSPECT_TIMEOUT_S).get(name)
    if not isinstance(stats, dict):
        return NO_REPLY
    pool = pool_summary(stats.get("pool"))
    if command == "autoscale":
        return None if stats.get("autoscaler") else "not sent: the worker was not started with --autoscale"
    if stats.get("autoscaler"):
        return None  # the worker refuses in its reply (no error logged): adjust the autoscale range instead
    if pool["type"] not in RESIZABLE_POOLS:
        return f"not sent: a {pool['type'] or 'unknown'} pool cannot grow or shrink"
    busy = len(remote.active_ids(celery, name, INSPECT_TIMEOUT_S) or ()) if command == "pool_shrink" else 0
    if command == "pool_shrink" and (pool["size"] or 0) - busy < int(arguments.get("n", 1)):
        return f"not sent: {busy} of its {pool['size']} pool processes are busy; only idle ones can go"
    return None


def outcome(name, command, reply, timeout_s=CONTROL_TIMEOUT_S):
    """(body, HTTP status) saying what the worker answered: ok 200, refused 409, silent 504."""
    if reply is None:
        return {"status": "error", "worker": name, "command": command, "reply": NO_REPLY,
                "message": f"{name} gave no reply to {command} within {timeout_s:g} s"}, 504
    if isinstance(reply, dict) and "error" in reply:
        said = f"{command} {reply['error']}" if reply.get("sent") is False else f"{name} refused {command}: " \
            f"{reply['error']}"
        return {"status": "error", "worker": name, "command": command, "reply": reply, "message": said}, 409
    text = reply.get("ok", reply) if isinstance(reply, dict) else reply
    return {"status": "success", "worker": name, "command": command, "reply": reply,
            "message": f"{name}: {text}"}, 200


def add_queue(name, queue):
    """A worker now consumes one more queue (it said so to a resume)."""
    row = get_row(name)
    with db.engine.begin() as conn:
        conn.execute(update(nodes_t).where(nodes_t.c.name == name).values(queues=sorted({*(row.queues or []), queue})))


def shutdown(celery, name, timeout_s=INSPECT_TIMEOUT_S):
    """Warm shutdown; a worker never replies to shutdown, so its answer to a ping just before is shown."""
    pong = control(celery, name, "ping", timeout_s=timeout_s)
    remote.shutdown(celery, name)
    said = "answered ping" if pong is not None else "gave no reply to ping"
    return {"status": "success", "worker": name, "command": "shutdown", "reply": pong or NO_REPLY,
            "message": f"Warm shutdown sent to {name} ({said}); it finishes its running tasks, then goes offline"}
