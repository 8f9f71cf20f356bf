"""The cluster: workers and their controls, the task types they register, queues."""
import logging
import threading
import time

from flask import current_app, g, jsonify, request

from panel.broker import connection
from panel.cluster import queues, task_types, workers
from panel.errors import ValidationError
from panel.runlog import operations, recorder
from panel.web.contract import api
from panel.web.schemas.cluster import (
    Autoscale,
    Control,
    Limits,
    PeekQuery,
    PoolStep,
    Purged,
    PurgeIn,
    QueueControl,
    QueueMessages,
    Queues,
    RateLimitIn,
    SendIn,
    TaskTypes,
    TimeLimitIn,
    WorkerDetail,
    Workers,
)
from panel.web.schemas.common import Sent

log = logging.getLogger("panel.control")
# What the lists feed (OpenAPI links): the first worker's, task type's and queue's names.
TO_WORKER = {op: {"name": "$response.body#/workers/0/name"} for op in (
    "worker_detail", "pool_restart", "pool_grow", "pool_shrink", "autoscale", "shutdown")}
TO_TASK_TYPE = {op: {"task_name": "$response.body#/tasks/0/name"} for op in ("send_task", "rate_limit", "time_limit")}
TO_QUEUE = {op: {"name": "$response.body#/queues/0/name"} for op in (
    "purge_queue", "pause_queue", "resume_queue", "queue_messages")}
TO_RUN = {op: {"celery_task_id": "$response.body#/celery_task_id"} for op in ("get_run", "cancel_run", "stop_retries")}
# A control answers with the worker's own reply: 409 when it refused (its reply says why), 504 when silent.
CONTROL_ANSWERS = (400, 404, 409, 503, (504, Control))
POOL_TARGET_S = 30  # a grow's size counts this long, or until the worker reports it (see pool_size)
POOL_LOCK = threading.Lock()


def celery():
    return current_app.extensions["celery"]


def broker_url():
    return current_app.config["CELERY_BROKER_URL"]


def reply(name, command, arguments=None):
    """Guards (known worker, broker up), then the command, answered with the worker's own reply."""
    workers.get_row(name)
    connection.ping(broker_url())
    answer = workers.control(celery(), name, command, arguments)
    payload, code = workers.outcome(name, command, answer)
    log.info("%s -> %s: %s", command, name, payload["message"])
    return jsonify(payload), code


@api(Workers, links=TO_WORKER)
def list_workers():
    """Every worker seen, online or offline by its heartbeat (from the panel's record: no broker call)."""
    return jsonify({"workers": workers.list_workers()})


@api(WorkerDetail, 404)
def worker_detail(name):
    """One worker: its record and what it answers now ("no reply" for a silent part)."""
    return jsonify(workers.detail(celery(), broker_url(), name))


@api(Control, 404)
def shutdown(name):
    """Warm shutdown: it finishes its running tasks, then goes (the reply is its ping just before)."""
    workers.get_row(name)
    connection.ping(broker_url())
    payload = workers.shutdown(celery(), name)
    log.info("shutdown -> %s: %s", name, payload["message"])
    return jsonify(payload)


@api(Control, *CONTROL_ANSWERS)
def pool_restart(name):
    """New pool processes after their current tasks (needs worker_pool_restarts, on for the panel's worker)."""
    return reply(name, "pool_restart", {"reload": False})


def pool_size(name):
    """The worker's pool size as it says now (its record's when it is silent), or as this panel last asked for.

    A prefork worker starts the processes of a grow on its next maintenance tick (about 5 s later), so what it
    reports lags what it was asked: the size asked for, remembered POOL_TARGET_S, counts until it shows.
    """
    live = workers.live_info(celery(), name, parts=("stats",))
    pool = workers.cache_values(live).get("pool") or workers.get_row(name).pool
    reported = workers.pool_summary(pool)["size"] or 0
    target, at = _targets().get(name, (0, 0.0))
    return max(reported, target) if time.monotonic() - at < POOL_TARGET_S else reported


def _targets():
    return current_app.extensions.setdefault("pool_targets", {})


def _within_cap(name, field, size):
    cap = current_app.config["WORKER_POOL_MAX"]
    if size > cap:
        raise ValidationError(field, f"would make the pool of {name} {size} processes; WORKER_POOL_MAX allows at "
                                     f"most {cap}")


@api(Control, *CONTROL_ANSWERS, optional_body=True)
def pool_grow(name, json: PoolStep):
    """Add n pool processes (default 1, at most 8 a call); 400 past WORKER_POOL_MAX processes in all (32)."""
    workers.get_row(name)
    connection.ping(broker_url())
    with POOL_LOCK:  # one grow at a time, so two calls cannot both fit under the cap
        size = pool_size(name) + json.n
        _within_cap(name, "n", size)
        answer, code = reply(name, "pool_grow", {"n": json.n})
        if code == 200:
            _targets()[name] = (size, time.monotonic())
    return answer, code


@api(Control, *CONTROL_ANSWERS, optional_body=True)
def pool_shrink(name, json: PoolStep):
    """Remove n pool processes (default 1, at most 8 a call)."""
    with POOL_LOCK:
        _targets().pop(name, None)
        return reply(name, "pool_shrink", {"n": json.n})


@api(Control, *CONTROL_ANSWERS)
def autoscale(name, json: Autoscale):
    """Set the autoscale range of a worker started with --autoscale (400 when min is above max or max is above
    WORKER_POOL_MAX)."""
    _within_cap(name, "max", json.max)
    return reply(name, "autoscale", {"max": json.max, "min": json.min})


@api(TaskTypes, links=TO_TASK_TYPE)
def registered_tasks():
    """Task types with signature and doc, and the workers that have them."""
    return jsonify({"tasks": task_types.registered(celery())})


@api(Sent, 400, 404, optional_body=True, links=TO_RUN)
def send_task(task_name, json: SendIn):
    """Send one run, now or later (countdown or eta; expires, priority); recorded like every run, with its ETA."""
    for name in request.args:  # `?countdown=60` would otherwise be dropped and the run start at once
        raise ValidationError(name, "is not read from the URL: send it in the JSON body")
    later = json.model_dump(include={"countdown", "eta", "expires", "priority"})
    celery_id = task_types.send(celery(), task_name, json.args, json.kwargs, json.queue, **later)
    recorder.flush()  # the answer's run id is in the run log when the caller asks for it
    when = f" (countdown {json.countdown:g} s)" if json.countdown else f" (eta {json.eta})" if json.eta else ""
    log.info("ad-hoc run of %s sent as %s%s", task_name, celery_id, when)
    return jsonify({"status": "success", "message": f"Sent {task_name}{when}", "celery_task_id": celery_id})


def _limits(payload):
    """200 when every worker applied it, 409 when one refused (its reply says why), 504 when one was silent."""
    log.info("limits: %s", payload["message"])
    refused = any(isinstance(a, dict) and "error" in a for a in payload["replies"].values())
    return jsonify(payload), (200 if payload["status"] == "success" else 409 if refused else 504)


@api(Limits, 400, 404, 409, (504, Limits))
def rate_limit(task_name, json: RateLimitIn):
    """Set the task type's rate limit on the workers that have it; 409 also when none is online."""
    return _limits(task_types.set_rate_limit(celery(), broker_url(), task_name, json.rate_limit))


@api(Limits, 400, 404, 409, (504, Limits))
def time_limit(task_name, json: TimeLimitIn):
    """Set the task type's soft and hard time limits on the workers (one left out is removed; soft <= hard)."""
    return _limits(task_types.set_time_limit(celery(), broker_url(), task_name, json.soft, json.hard))


@api(Queues, links=TO_QUEUE)
def list_queues():
    """Every queue the broker, the workers or WORKER_QUEUES know, with its waiting messages and consumers."""
    return jsonify({"queues": queues.lengths(celery(), current_app.config["WORKER_QUEUES"])})


@api(Purged, 400, 404)
def purge_queue(name, json: PurgeIn):
    """Delete every waiting message of a queue, for good (send {"confirm": true})."""
    removed = operations.purge_queue(celery(), broker_url(), name, current_app.config["WORKER_QUEUES"])
    log.warning("queue %s purged: %d message(s) removed", name, removed)
    return jsonify({"status": "success", "queue": name, "removed": removed,
                    "message": f"Purged {name}: {removed} message(s) removed"})


def _queue_control(payload, code):
    log.info("%s", payload["message"])
    return jsonify(payload), code


@api(QueueControl, 404, (409, QueueControl), (504, QueueControl))
def pause_queue(name):
    """Stop every worker that consumes the queue from taking its messages (they wait); kept across restarts.

    A worker that comes online later is told at once; 409 or 504 when a consumer refused or was silent (the
    pause is kept all the same)."""
    by = g.identity.username if g.get("identity") else ""
    return _queue_control(*queues.pause(celery(), broker_url(), name, current_app.config["WORKER_QUEUES"], by))


@api(QueueControl, 404, (409, QueueControl), (504, QueueControl))
def resume_queue(name):
    """Let the queue's consumers take its messages again (a queue that was not paused: the same, harmlessly)."""
    return _queue_control(*queues.resume(celery(), broker_url(), name, current_app.config["WORKER_QUEUES"]))


@api(QueueMessages, 404)
def queue_messages(name, query: PeekQuery):
    """The first waiting messages, in the order a worker takes them, without taking or moving them."""
    return jsonify(queues.peek(celery(), broker_url(), name, current_app.config["WORKER_QUEUES"], query.limit))
