"""OpenAPI entries for the workers, queues and cluster-control routes (merged by panel.openapi)."""
from panel.web.openapi import BOOL, INT, NUM, STR, json_body, obj, op, path_param, request_body

ANY = {}
NULL_STR = {"nullable": True, **STR}
NULL_NUM = {"nullable": True, **NUM}
NO_REPLY_OR = lambda schema: {"oneOf": [schema, {"type": "string", "enum": ["no reply"]}]}  # noqa: E731
POOL = obj(type=NULL_STR, size={"nullable": True, **INT}, max_concurrency={"nullable": True, **INT},
           processes={"type": "array", "items": INT}, autoscaler={"nullable": True, "type": "object"})
STATUS = {"type": "string", "enum": ["online", "offline"]}
WORKER = obj(name=STR, hostname=STR, pid={"nullable": True, **INT}, status=STATUS,
             online=BOOL, first_seen_at=NULL_STR, last_heartbeat_at=NULL_STR, heartbeat_age_s=NULL_NUM,
             offline_at=NULL_STR, heartbeat_freq_s=NUM, sw_ver=STR, sw_sys=STR, active=INT, processed=INT,
             succeeded=INT, failed=INT, loadavg={"nullable": True, "type": "array", "items": NUM}, pool=POOL,
             queues={"type": "array", "items": STR}, registered_count=INT, info_at=NULL_STR)
LIVE = obj(stats=NO_REPLY_OR({"type": "object"}), active=NO_REPLY_OR({"type": "array", "items": ANY}),
           reserved=NO_REPLY_OR({"type": "array", "items": ANY}),
           scheduled=NO_REPLY_OR({"type": "array", "items": ANY}),
           registered=NO_REPLY_OR({"type": "array", "items": STR}),
           active_queues=NO_REPLY_OR({"type": "array", "items": ANY}))
DETAIL = {"allOf": [WORKER, obj(live=LIVE, no_reply={"type": "array", "items": STR},
                                registered={"type": "array", "items": STR})]}
CONTROL = obj(status=STR, worker=STR, command=STR, message=STR, reply=NO_REPLY_OR({"type": "object"}))
TASK_TYPE = obj(name=STR, signature=NULL_STR, doc=STR, known_to_panel=BOOL, workers={"type": "array", "items": STR},
                rate_limit=NULL_STR, time_limit=NULL_NUM, soft_time_limit=NULL_NUM)
LIMITS = obj(status=STR, message=STR, applied_by={"type": "array", "items": STR}, replies={"type": "object"})
QUEUE = obj(name=STR, messages=INT, consumers={"type": "array", "items": STR})
NAME, TASK_NAME = path_param("name"), path_param("task_name")
N_BODY = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 64}}}
LIMIT_BODY = {"type": "object", "properties": {"soft": {"nullable": True, "type": "number", "minimum": 0},
                                               "hard": {"nullable": True, "type": "number", "minimum": 0}}}
SILENT = {"504": json_body(CONTROL, "The worker gave no reply within the timeout")}


def control(summary, body_schema=None):
    """A worker control: 200 done, 409 the worker refused (its reply says why), 504 no reply."""
    operation = op(summary, json_body(CONTROL), 400, 404, 409, 503, params=[NAME])
    operation["responses"].update(SILENT)
    if body_schema:
        operation["requestBody"] = dict(request_body(body_schema), required=False)
    return {"post": operation}


def limits(summary, body_schema):
    operation = op(summary, json_body(LIMITS), 400, 404, 409, 503, params=[TASK_NAME])
    operation["responses"]["504"] = json_body(LIMITS, "Some workers gave no reply")
    return {"post": dict(operation, requestBody=request_body(body_schema))}


PATHS = {
    "/api/workers": {"get": op("Every worker seen, online or offline by heartbeat",
                               json_body(obj(workers={"type": "array", "items": WORKER})))},
    "/api/workers/{name}": {"get": op(
        "One worker: its record and what it answers now ('no reply' for a silent part)", json_body(DETAIL),
        404, 503, params=[NAME])},
    "/api/workers/{name}/shutdown": {"post": op(
        "Warm shutdown (a worker does not reply to shutdown: the reply is its ping just before)",
        json_body(CONTROL), 404, 503, params=[NAME])},
    "/api/workers/{name}/pool-restart": control("Restart the pool's processes (needs worker_pool_restarts)"),
    "/api/workers/{name}/pool-grow": control("Add n pool processes (default 1)", N_BODY),
    "/api/workers/{name}/pool-shrink": control("Remove n pool processes (default 1)", N_BODY),
    "/api/workers/{name}/autoscale": control("Set the autoscale range (workers started with --autoscale)", {
        "type": "object", "required": ["max"],
        "properties": {"max": {"type": "integer", "minimum": 1, "maximum": 1024},
                       "min": {"type": "integer", "minimum": 0}}}),
    "/api/registered-tasks": {"get": op("Task types with signature and doc, and the workers that have them",
                                        json_body(obj(tasks={"type": "array", "items": TASK_TYPE})))},
    "/api/registered-tasks/{task_name}/send": {"post": dict(
        op("Send one run now (recorded like every run)", json_body(obj(status=STR, message=STR, celery_task_id=STR)),
           400, 404, 503, params=[TASK_NAME]),
        requestBody=dict(request_body({"type": "object", "properties": {
            "args": {"type": "array", "items": ANY}, "kwargs": {"type": "object"}, "queue": STR}}), required=False))},
    "/api/registered-tasks/{task_name}/rate-limit": limits(
        "Set the task type's rate limit on the workers", {"type": "object", "required": ["rate_limit"],
                                                         "properties": {"rate_limit": STR}}),
    "/api/registered-tasks/{task_name}/time-limit": limits(
        "Set the task type's soft and hard time limits on the workers (one left out is removed)", LIMIT_BODY),
    "/api/queues": {"get": op("Known queues and their waiting messages",
                              json_body(obj(queues={"type": "array", "items": QUEUE})), 503)},
    "/api/queues/{name}/purge": {"post": dict(
        op("Delete every waiting message of a queue", json_body(obj(status=STR, queue=STR, removed=INT, message=STR)),
           400, 404, 503, params=[NAME]),
        requestBody=request_body({"type": "object", "required": ["confirm"], "properties": {"confirm": BOOL}}))},
}
