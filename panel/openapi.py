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
            "/api/audit": {"get": _op(
                "The audit log, newest first (admin)",
                _json(_obj(events={"type": "array", "items": {"type": "object"}}, next_before={"nullable": True, **INT})),
                400, params=[q("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
                             q("before", INT), q("actor", STR), q("action", STR)])},
            "/api/openapi.json": {"get": _op("This document", _json({"type": "object"}))},
        },
    }
