"""JSON routes for the cluster: workers, their controls, registered tasks, queues."""
import logging

from flask import current_app, jsonify

from panel.broker import connection
from panel.cluster import queues, task_types, workers
from panel.errors import NoWorkerOnline
from panel.web.errors import error_response
from panel.web.request_args import json_object, whole_field

log = logging.getLogger("panel.control")
POOL_STEP_MAX = 64
AUTOSCALE_MAX = 1024


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


def list_workers():
    return jsonify({"workers": workers.list_workers()})


def worker_detail(name):
    return jsonify(workers.detail(celery(), broker_url(), name))


def shutdown(name):
    workers.get_row(name)
    connection.ping(broker_url())
    payload = workers.shutdown(celery(), name)
    log.info("shutdown -> %s: %s", name, payload["message"])
    return jsonify(payload)


def pool_restart(name):
    return reply(name, "pool_restart", {"reload": False})


def pool_grow(name):
    return reply(name, "pool_grow", {"n": whole_field(json_object(False), "n", 1, POOL_STEP_MAX, default=1)})


def pool_shrink(name):
    return reply(name, "pool_shrink", {"n": whole_field(json_object(False), "n", 1, POOL_STEP_MAX, default=1)})


def autoscale(name):
    data = json_object()
    high = whole_field(data, "max", 1, AUTOSCALE_MAX)
    low = whole_field(data, "min", 0, high, default=0)
    return reply(name, "autoscale", {"max": high, "min": low})


def registered_tasks():
    return jsonify({"tasks": task_types.registered(celery())})


def send_task(task_name):
    celery_id = task_types.send(celery(), task_name, json_object(False))
    log.info("ad-hoc run of %s sent as %s", task_name, celery_id)
    return jsonify({"status": "success", "message": f"Sent {task_name}", "celery_task_id": celery_id})


def _limits(apply, task_name):
    try:
        payload = apply(celery(), broker_url(), task_name, json_object())
    except NoWorkerOnline as exc:
        return error_response(409, str(exc))
    log.info("limits of %s: %s", task_name, payload["message"])
    answers = payload["replies"].values()
    refused = any(isinstance(a, dict) and "error" in a for a in answers)
    return jsonify(payload), (200 if payload["status"] == "success" else 409 if refused else 504)


def rate_limit(task_name):
    return _limits(task_types.set_rate_limit, task_name)


def time_limit(task_name):
    return _limits(task_types.set_time_limit, task_name)


def list_queues():
    return jsonify({"queues": queues.lengths(celery(), current_app.config["WORKER_QUEUES"])})


def purge_queue(name):
    removed = queues.purge(celery(), broker_url(), name, json_object(False), current_app.config["WORKER_QUEUES"])
    log.warning("queue %s purged: %d message(s) removed", name, removed)
    return jsonify({"status": "success", "queue": name, "removed": removed,
                    "message": f"Purged {name}: {removed} message(s) removed"})
