"""OpenAPI entries for health, the watchdog and the restart history (merged by panel.openapi)."""
from panel.web.openapi import BOOL, INT, NUM, STR, json_body, obj, op, path_param, q, request_body

NULLABLE_STR = {"nullable": True, **STR}
CHECK = obj(ok=BOOL, latency_ms=NUM, error=STR)
DOG = obj(program=STR, enabled=BOOL, desired=STR, state={"type": "string", "enum": [
    "STOPPED", "STARTING", "RUNNING", "STOPPING", "EXITED", "BACKOFF", "FATAL"]}, failures=INT,
    retry_at=NULLABLE_STR, reason=STR, pids={"type": "array", "items": INT}, changed_at=STR)
PROGRAM = obj(active=BOOL, pids={"type": "array", "items": INT}, state=STR, watchdog={"nullable": True, **DOG})
EVENT = obj(id=INT, at=STR, program=STR, action=STR, outcome=STR, pids={"type": "array", "items": INT}, message=STR,
            cause=STR, actor=STR, exit_status={"nullable": True, **INT})
PROGRAM_PARAM = path_param("program", {"type": "string", "enum": ["worker", "beat"]})

PATHS = {
    "/api/health": {"get": op(
        "Broker and database reachable with latency, worker and Beat with the watchdog, Beat's last dispatch, "
        "the message waiting longest; status ok, degraded or down",
        json_body(obj(status={"type": "string", "enum": ["ok", "degraded", "down"]}, checked_at=STR, broker=CHECK,
                      database=CHECK, worker=PROGRAM, beat=PROGRAM, background_actor_pid={"nullable": True, **INT},
                      last_beat_dispatch={"nullable": True, **obj(at=STR, task=STR, age_s=NUM)},
                      oldest_queued={"nullable": True, **obj(queue=STR, task_id=STR, task=STR, queued_at=NULLABLE_STR,
                                                             age_s={"nullable": True, **NUM})})))},
    "/api/watchdog": {"get": op("The watchdog per program", json_body(obj(watchdog=obj(worker=DOG, beat=DOG))))},
    "/api/watchdog/{program}": {"post": dict(op(
        "Switch the watchdog for the worker or Beat (on: keep it running, clears FATAL)",
        json_body(obj(status=STR, message=STR, watchdog=DOG)), 400, 404, params=[PROGRAM_PARAM]),
        requestBody=request_body({"type": "object", "required": ["enabled"], "properties": {"enabled": BOOL}}))},
    "/api/process-events": {"get": op(
        "The restart history, newest first: starts, stops, restarts, crashes, watchdog actions",
        json_body(obj(events={"type": "array", "items": EVENT}, next_before={"nullable": True, **INT})), 400,
        params=[q("program", {"type": "string", "enum": ["worker", "beat"]}),
                q("limit", {"type": "integer", "minimum": 1, "maximum": 500}), q("before", INT)])},
}
