"""The JSON API described as OpenAPI 3.0; a test checks it covers every JSON route in the URL map."""

def _obj(**props):
    return {"type": "object", "properties": props}


STR, INT, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
INTS = {"type": "array", "items": INT}
ERROR = {"$ref": "#/components/schemas/Error"}
SEED_ERROR = {"$ref": "#/components/schemas/SeedError"}


def _json(schema, description="OK"):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes, schema=ERROR):
    texts = {400: "Bad input", 401: "Not authenticated", 403: "Role too low or CSRF refused", 404: "Not found",
             409: "Another control action is in progress", 500: "Failed", 503: "Broker unreachable"}
    return {str(c): _json(schema, texts[c]) for c in codes}


def _op(summary, ok, *codes, schema=ERROR, params=None, security=True):
    op = {"summary": summary, "responses": {"200": ok, **_errors(401, 403, *codes, schema=schema)}}
    if params:
        op["parameters"] = params
    if not security:
        op["security"] = []
        op["responses"] = {"200": ok}
    return op


PROCESS = _obj(active=BOOL, status=STR, pids=INTS, count=INT, state=STR)
STATUS_WORKER = dict(PROCESS, properties=dict(PROCESS["properties"], pool_processes=INT,
                                              pool_pids={"type": "object"}))


TASK = _obj(id=INT, name=STR, task=STR, args={"type": "array", "items": {}}, kwargs={"type": "object"},
            interval_seconds={"nullable": True, **INT}, crontab=STR, enabled=BOOL, status=STR,
            last_run_at={"nullable": True, **STR}, next_run_at={"nullable": True, **STR}, run_count=INT)
TASK_INPUT = {"type": "object", "required": ["name", "task"], "properties": {
    "name": STR, "task": STR, "args": {"type": "array", "items": {}}, "kwargs": {"type": "object"},
    "interval_seconds": {"type": "integer", "minimum": 1}, "crontab": STR, "enabled": BOOL}}
RUN = _obj(celery_task_id=STR, task=STR, scheduled_task_id={"nullable": True, **INT}, status=STR, state=STR,
           worker={"nullable": True, **STR}, retries=INT, error={"nullable": True, **STR})
CANCELLED = _obj(status=STR, message=STR, confirmed_stopped=BOOL, revoked_queued={"type": "array", "items": STR},
                 stopped={"type": "array", "items": STR}, forced={"type": "array", "items": STR},
                 not_confirmed={"type": "array", "items": STR})
TASK_ID = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "integer"}}
CELERY_ID = {"name": "celery_task_id", "in": "path", "required": True, "schema": STR}


def _body(schema):
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def document():
    q = lambda name, schema: {"name": name, "in": "query", "required": False, "schema": schema}  # noqa: E731
    return {
        "openapi": "3.0.3",
        "info": {"title": "Celery Control Panel API", "version": "1.0.0",
                 "description": "Every route needs a Bearer token (flask --app app tokens create USER) "
                                "or a browser session; state changes need the operator role."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": _obj(status={"type": "string", "enum": ["error"]}, message=STR),
                "SeedError": _obj(success=BOOL, message=STR),
            },
        },
        "paths": {
            "/healthz": {"get": _op("Liveness", _json(_obj(status=STR)), security=False)},
            "/celery_status": {"get": _op("Is Celery Beat running (seed 002)",
                                          _json(_obj(running=BOOL, pids=INTS, count=INT)), schema=SEED_ERROR)},
            "/restart_celery_beat": {"post": _op(
                "Restart Celery Beat; 200 with not_running when it is not running (seed 002)",
                _json(_obj(success=BOOL, message=STR, old_pids=INTS, new_pids=INTS, not_running=BOOL,
                           instructions=STR, manual_start_command=STR)), 409, 500, 503, schema=SEED_ERROR)},
            "/scheduler/celery-status/": {"get": _op(
                "Worker and Beat status (seed 000)",
                _json(_obj(status=STR, running=BOOL, worker=STATUS_WORKER, beat=PROCESS)))},
            "/scheduler/start-celery/": {"post": _op(
                "Start the worker and Beat that are not running",
                _json(_obj(status=STR, message=STR, worker_pids=INTS, beat_pids=INTS)), 409, 500, 503)},
            "/scheduler/stop-celery/": {"post": _op(
                "Stop the worker and Beat; running tasks and logs become failed (seeds 000, 001)",
                _json(_obj(status=STR, message=STR, workers_killed=INT, beats_killed=INT)), 409, 500)},
            "/api/me": {"get": _op("Who you are", _json(_obj(username=STR, role=STR, via=STR)))},
            "/api/logs/{program}": {"get": _op(
                "The last lines of the worker's or Beat's log", _json(_obj(program=STR, path=STR, exists=BOOL,
                                                                           lines={"type": "array", "items": STR})),
                400, 404, params=[{"name": "program", "in": "path", "required": True,
                                   "schema": {"type": "string", "enum": ["worker", "beat"]}},
                                  q("lines", {"type": "integer", "minimum": 1, "maximum": 1000})])},
            "/api/audit": {"get": _op(
                "The audit log, newest first (admin)",
                _json(_obj(events={"type": "array", "items": {"type": "object"}}, next_before={"nullable": True, **INT})),
                400, params=[q("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
                             q("before", INT), q("actor", STR), q("action", STR)])},
            "/api/openapi.json": {"get": _op("This document", _json({"type": "object"}))},
            "/api/tasks": {
                "get": _op("Scheduled tasks", _json(_obj(tasks={"type": "array", "items": TASK}))),
                "post": dict(_op("Create a scheduled task", _json(TASK, "Created"), 400),
                             requestBody=_body(TASK_INPUT)),
            },
            "/api/tasks/{task_id}": {
                "get": _op("One scheduled task", _json(TASK), 404, params=[TASK_ID]),
                "put": dict(_op("Edit a scheduled task (fields given are changed)", _json(TASK), 400, 404,
                                params=[TASK_ID]), requestBody=_body({**TASK_INPUT, "required": []})),
                "delete": _op("Delete a scheduled task", _json(_obj(status=STR, message=STR)), 404, params=[TASK_ID]),
            },
            "/api/tasks/{task_id}/run": {"post": _op("Send the task now", _json(_obj(status=STR, celery_task_id=STR)),
                                                     404, 503, params=[TASK_ID])},
            "/api/tasks/{task_id}/enable": {"post": _op("Enable the task", _json(TASK), 404, params=[TASK_ID])},
            "/api/tasks/{task_id}/disable": {"post": _op("Disable the task", _json(TASK), 404, params=[TASK_ID])},
            "/api/tasks/{task_id}/runs": {"get": _op("The task's runs, newest first",
                                                     _json(_obj(runs={"type": "array", "items": RUN})), 400, 404,
                                                     params=[TASK_ID, q("limit", INT)])},
            "/api/runs/{celery_task_id}": {"get": _op("One run", _json(RUN), 404, params=[CELERY_ID])},
            "/scheduler/run-all-tasks/": {"post": _op("Send every enabled task now (seed 000)",
                                                      _json(_obj(status=STR, message=STR, count=INT)), 503)},
            "/scheduler/stop-all-tasks/": {"post": _op("Disable every task (seed 000)",
                                                       _json(_obj(status=STR, message=STR, disabled=INT)))},
            "/scheduler/start-all-tasks/": {"post": _op("Enable every task (seed 000)",
                                                        _json(_obj(status=STR, message=STR, enabled=INT)))},
            "/scheduler/cancel-task/{task_id}/": {"post": _op(
                "Cancel a scheduled task's queued and running runs (seed 001)", _json(CANCELLED), 404, 409, 503,
                params=[TASK_ID])},
            "/scheduler/cancel-run/{celery_task_id}/": {"post": _op(
                "Cancel one run", _json(CANCELLED), 404, 409, 503, params=[CELERY_ID])},
            "/scheduler/stop-retries/{celery_task_id}/": {"post": _op(
                "Stop a run's retry loop for good (as scripts/stop_retries.py)",
                _json(_obj(status=STR, message=STR, ok=BOOL, steps={"type": "array", "items": {"type": "object"}})),
                404, 500, 503, params=[CELERY_ID])},
        },
    }
