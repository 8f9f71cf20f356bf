"""OpenAPI entries for the results browser, its export and clean-up, and /metrics (merged by panel.openapi)."""
from panel.runlog.search import PAGE_SIZE_MAX, STATES
from panel.web.openapi import BOOL, INT, RUN, STR, json_body, obj, op, q, request_body

STATE_LIST = {"type": "string", "description": f"one or more of {', '.join(STATES)}, comma separated"}
FILTERS = [
    q("task", STR, "exact task name"), q("status", STATE_LIST), q("worker", STR, "node name, e.g. worker@host"),
    q("since", STR, "ISO 8601 date or date-time (UTC), queued at or after"),
    q("until", STR, "ISO 8601 date or date-time (UTC), queued before; a bare date includes that day"),
    q("q", {"type": "string", "maxLength": 200}, "a task id, or text in the args and kwargs"),
]
FINISHED = {"type": "array", "items": {"type": "string", "enum": ["SUCCESS", "FAILURE", "REVOKED"]}}
DELETED = obj(status=STR, message=STR, deleted=INT, would_delete=INT, dry_run=BOOL)

PATHS = {
    "/api/runs": {"get": op(
        "Every run, newest first, filtered; follow next_cursor for the next page",
        json_body(obj(runs={"type": "array", "items": RUN}, next_cursor={"nullable": True, **STR},
                      filter={"type": "object"})), 400,
        params=FILTERS + [q("limit", {"type": "integer", "minimum": 1, "maximum": PAGE_SIZE_MAX}),
                          q("cursor", STR, "next_cursor of the page before")])},
    "/api/runs/export": {"get": op(
        "The whole filtered list as CSV or JSON (streamed)",
        {"description": "OK", "content": {"text/csv": {"schema": STR},
                                          "application/json": {"schema": {"type": "array", "items": RUN}}}},
        400, params=FILTERS + [q("format", {"type": "string", "enum": ["csv", "json"]})])},
    "/api/runs/per-minute": {"get": op(
        "Succeeded and failed runs per minute, oldest first (the chart)",
        json_body(obj(minutes={"type": "array", "items": obj(minute=STR, succeeded=INT, failed=INT)})), 400,
        params=[q("minutes", {"type": "integer", "minimum": 1, "maximum": 1440})])},
    "/api/runs/delete": {"post": dict(op(
        "Delete finished runs queued before a date (admin); open runs are never deleted",
        json_body(DELETED), 400), requestBody=request_body({"type": "object", "properties": {
            "older_than_days": {"type": "integer", "minimum": 0, "maximum": 36500}, "before": STR,
            "states": FINISHED, "task": STR, "dry_run": BOOL}}))},
    "/api/runs/cleanup": {"post": dict(op(
        "The retention clean-up now (admin): successful runs older than days (30); failures kept unless asked",
        json_body(obj(status=STR, message=STR, deleted=INT, would_delete={"nullable": True, **INT}, dry_run=BOOL,
                      before=STR, states={"type": "array", "items": STR})), 400),
        requestBody={"required": False, "content": {"application/json": {"schema": {"type": "object", "properties": {
            "days": {"type": "integer", "minimum": 0, "maximum": 36500}, "include_failures": BOOL,
            "dry_run": BOOL}}}}})},
    "/metrics": {"get": op(
        "Prometheus text format: workers online, Beat up, runs by state, queue lengths, run-duration histogram",
        {"description": "OK", "content": {"text/plain": {"schema": STR}}})},
}
