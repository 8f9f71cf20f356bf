"""The JSON API described as OpenAPI 3.0; a test checks it covers every JSON route in the URL map."""

def obj(**props):
    return {"type": "object", "properties": props}


STR, INT, BOOL, NUM = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}, {"type": "number"}
INTS = {"type": "array", "items": INT}
ERROR = {"$ref": "#/components/schemas/Error"}
SEED_ERROR = {"$ref": "#/components/schemas/SeedError"}


def json_body(schema, description="OK"):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes, schema=ERROR):
    texts = {400: "Bad input", 401: "Not authenticated", 403: "Role too low or CSRF refused", 404: "Not found",
             409: "Another control action is in progress", 500: "Failed", 503: "Broker unreachable"}
    return {str(c): json_body(schema, texts[c]) for c in codes}


def op(summary, ok, *codes, schema=ERROR, params=None, security=True):
    op = {"summary": summary, "responses": {"200": ok, **_errors(401, 403, *codes, schema=schema)}}
    if params:
        op["parameters"] = params
    if not security:
        op["security"] = []
        op["responses"] = {"200": ok}
    return op


PROCESS = obj(active=BOOL, status=STR, pids=INTS, count=INT, state=STR)
STATUS_WORKER = dict(PROCESS, properties=dict(PROCESS["properties"], pool_processes=INT,
                                              pool_pids={"type": "object"}))


TASK = obj(id=INT, name=STR, task=STR, args={"type": "array", "items": {}}, kwargs={"type": "object"},
            interval_seconds={"nullable": True, **INT}, crontab=STR, enabled=BOOL, status=STR,
            last_run_at={"nullable": True, **STR}, next_run_at={"nullable": True, **STR}, run_count=INT)
TASK_INPUT = {"type": "object", "required": ["name", "task"], "properties": {
    "name": STR, "task": STR, "args": {"type": "array", "items": {}}, "kwargs": {"type": "object"},
    "interval_seconds": {"type": "integer", "minimum": 1}, "crontab": STR, "enabled": BOOL}}
RUN = obj(celery_task_id=STR, task=STR, scheduled_task_id={"nullable": True, **INT}, status=STR, state=STR,
           worker={"nullable": True, **STR}, retries=INT, error={"nullable": True, **STR})
CANCELLED = obj(status=STR, message=STR, confirmed_stopped=BOOL, revoked_queued={"type": "array", "items": STR},
                 stopped={"type": "array", "items": STR}, forced={"type": "array", "items": STR},
                 not_confirmed={"type": "array", "items": STR})
TASK_ID = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "integer"}}
CELERY_ID = {"name": "celery_task_id", "in": "path", "required": True, "schema": STR}


def request_body(schema):
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def q(name, schema, description=None):
    """An optional query parameter."""
    param = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        param["description"] = description
    return param


def path_param(name, schema=STR):
    return {"name": name, "in": "path", "required": True, "schema": schema}


def document():
    from panel.web import openapi_alerts, openapi_health, openapi_runs, openapi_workers
    doc = {
        "openapi": "3.0.3",
        "info": {"title": "Celery Control Panel API", "version": "1.0.0",
                 "description": "Every route needs a Bearer token (flask --app app tokens create USER) "
                                "or a browser session; state changes need the operator role."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": obj(status={"type": "string", "enum": ["error"]}, message=STR),
                "SeedError": obj(success=BOOL, message=STR),
            },
        },
        "paths": {
            "/healthz": {"get": op("Liveness", json_body(obj(status=STR)), security=False)},
            "/celery_status": {"get": op("Is Celery Beat running (seed 002)",
                                          json_body(obj(running=BOOL, pids=INTS, count=INT)), schema=SEED_ERROR)},
            "/restart_celery_beat": {"post": op(
                "Restart Celery Beat; 200 with not_running when it is not running (seed 002)",
                json_body(obj(success=BOOL, message=STR, old_pids=INTS, new_pids=INTS, not_running=BOOL,
                           instructions=STR, manual_start_command=STR)), 409, 500, 503, schema=SEED_ERROR)},
            "/scheduler/celery-status/": {"get": op(
                "Worker and Beat status (seed 000)",
                json_body(obj(status=STR, running=BOOL, worker=STATUS_WORKER, beat=PROCESS)))},
            "/scheduler/start-celery/": {"post": op(
                "Start the worker and Beat that are not running",
                json_body(obj(status=STR, message=STR, worker_pids=INTS, beat_pids=INTS)), 409, 500, 503)},
            "/scheduler/stop-celery/": {"post": op(
                "Stop the worker and Beat; running tasks and logs become failed (seeds 000, 001)",
                json_body(obj(status=STR, message=STR, workers_killed=INT, beats_killed=INT)), 409, 500)},
            "/api/me": {"get": op("Who you are", json_body(obj(username=STR, role=STR, via=STR)))},
            "/api/logs/{program}": {"get": op(
                "The last lines of the worker's or Beat's log", json_body(obj(program=STR, path=STR, exists=BOOL,
                                                                           lines={"type": "array", "items": STR})),
                400, 404, params=[{"name": "program", "in": "path", "required": True,
                                   "schema": {"type": "string", "enum": ["worker", "beat"]}},
                                  q("lines", {"type": "integer", "minimum": 1, "maximum": 1000})])},
            "/api/audit": {"get": op(
                "The audit log, newest first (admin)",
                json_body(obj(events={"type": "array", "items": {"type": "object"}}, next_before={"nullable": True, **INT})),
                400, params=[q("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
                             q("before", INT), q("actor", STR), q("action", STR)])},
            "/api/openapi.json": {"get": op("This document", json_body({"type": "object"}))},
            "/api/tasks": {
                "get": op("Scheduled tasks", json_body(obj(tasks={"type": "array", "items": TASK}))),
                "post": dict(op("Create a scheduled task", json_body(TASK, "Created"), 400),
                             requestBody=request_body(TASK_INPUT)),
            },
            "/api/tasks/{task_id}": {
                "get": op("One scheduled task", json_body(TASK), 404, params=[TASK_ID]),
                "put": dict(op("Edit a scheduled task (fields given are changed)", json_body(TASK), 400, 404,
                                params=[TASK_ID]), requestBody=request_body({**TASK_INPUT, "required": []})),
                "delete": op("Delete a scheduled task", json_body(obj(status=STR, message=STR)), 404, params=[TASK_ID]),
            },
            "/api/tasks/{task_id}/run": {"post": op("Send the task now", json_body(obj(status=STR, celery_task_id=STR)),
                                                     404, 503, params=[TASK_ID])},
            "/api/tasks/{task_id}/enable": {"post": op("Enable the task", json_body(TASK), 404, params=[TASK_ID])},
            "/api/tasks/{task_id}/disable": {"post": op("Disable the task", json_body(TASK), 404, params=[TASK_ID])},
            "/api/tasks/{task_id}/runs": {"get": op("The task's runs, newest first",
                                                     json_body(obj(runs={"type": "array", "items": RUN})), 400, 404,
                                                     params=[TASK_ID, q("limit", INT)])},
            "/api/runs/{celery_task_id}": {"get": op("One run", json_body(RUN), 404, params=[CELERY_ID])},
            "/scheduler/run-all-tasks/": {"post": op("Send every enabled task now (seed 000)",
                                                      json_body(obj(status=STR, message=STR, count=INT)), 503)},
            "/scheduler/stop-all-tasks/": {"post": op("Disable every task (seed 000)",
                                                       json_body(obj(status=STR, message=STR, disabled=INT)))},
            "/scheduler/start-all-tasks/": {"post": op("Enable every task (seed 000)",
                                                        json_body(obj(status=STR, message=STR, enabled=INT)))},
            "/scheduler/cancel-task/{task_id}/": {"post": op(
                "Cancel a scheduled task's queued and running runs (seed 001)", json_body(CANCELLED), 404, 409, 503,
                params=[TASK_ID])},
            "/scheduler/cancel-run/{celery_task_id}/": {"post": op(
                "Cancel one run", json_body(CANCELLED), 404, 409, 503, params=[CELERY_ID])},
            "/scheduler/stop-retries/{celery_task_id}/": {"post": op(
                "Stop a run's retry loop for good (as scripts/stop_retries.py)",
                json_body(obj(status=STR, message=STR, ok=BOOL, steps={"type": "array", "items": {"type": "object"}})),
                404, 500, 503, params=[CELERY_ID])},
        },
    }
    doc["paths"].update(openapi_runs.PATHS)
    doc["paths"].update(openapi_workers.PATHS)
    doc["paths"].update(openapi_health.PATHS)
    doc["paths"].update(openapi_alerts.PATHS)
    return doc
