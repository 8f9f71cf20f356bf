"""JSON routes for reliability: the health view, the watchdog switches, the restart history."""
from flask import Blueprint, current_app, jsonify, request

from panel.errors import ValidationError
from panel.health import checks
from panel.host import history, watchdog
from panel.host.processes import KINDS
from panel.security.auth import operator, viewer
from panel.web.request_args import ID_MAX, json_object, whole_arg

health_api = Blueprint("health_api", __name__)


@health_api.get("/api/health")
@viewer
def health_view():
    """Broker and database with latency, worker and Beat with the watchdog, Beat's last send, the oldest message."""
    return jsonify(checks.report(current_app._get_current_object()))


@health_api.get("/api/watchdog")
@viewer
def watchdog_states():
    return jsonify({"watchdog": watchdog.view()})


@health_api.post("/api/watchdog/<any(worker, beat):program>")
@operator
def switch_watchdog(program):
    """{"enabled": true} keeps the program running (and clears FATAL); false leaves it alone."""
    enabled = json_object().get("enabled")
    if not isinstance(enabled, bool):
        raise ValidationError("enabled", "must be true or false")
    row = watchdog.set_enabled(program, enabled, f"switched {'on' if enabled else 'off'} from the panel")
    return jsonify({"status": "success", "message": f"Watchdog for {program} {'on' if enabled else 'off'}",
                    "watchdog": watchdog.as_dict(row)})


@health_api.get("/api/process-events")
@viewer
def process_events():
    """The restart history, newest first: `program`, `limit`, and `before` (an id) to page back."""
    limit = whole_arg("limit", 1, history.PAGE_SIZE_MAX, default=50)
    before = whole_arg("before", 1, ID_MAX)
    program = request.args.get("program") or None
    if program is not None and program not in KINDS:
        raise ValidationError("program", f"must be one of {', '.join(KINDS)}")
    found = history.events(limit, before, program)
    full = len(found) == limit
    return jsonify({"events": [history.as_dict(e) for e in found], "next_before": found[-1].id if full else None})
