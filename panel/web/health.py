"""Health: the health view, the watchdog switches, the restart history, alerts, Prometheus metrics."""
from flask import Response, current_app, jsonify, request

from panel.errors import ValidationError
from panel.health import alerts, checks, metrics
from panel.host import history, watchdog
from panel.host.processes import KINDS
from panel.web.errors import error_response
from panel.web.request_args import ID_MAX, json_object, whole_arg


def health_view():
    """Broker and database with latency, worker and Beat with the watchdog, Beat's last send, the oldest message."""
    return jsonify(checks.report(current_app._get_current_object()))


def watchdog_states():
    return jsonify({"watchdog": watchdog.view()})


def switch_watchdog(program):
    """{"enabled": true} keeps the program running (and clears FATAL); false leaves it alone."""
    enabled = json_object().get("enabled")
    if not isinstance(enabled, bool):
        raise ValidationError("enabled", "must be true or false")
    row = watchdog.set_enabled(program, enabled, f"switched {'on' if enabled else 'off'} from the panel")
    return jsonify({"status": "success", "message": f"Watchdog for {program} {'on' if enabled else 'off'}",
                    "watchdog": watchdog.as_dict(row)})


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


def list_alerts():
    """Alerts raised, newest first, with what each channel did; `before` (an id) pages back."""
    limit = whole_arg("limit", 1, alerts.PAGE_SIZE_MAX, default=100)
    before = whole_arg("before", 1, ID_MAX)
    events = alerts.events(limit, before)
    return jsonify({"alerts": [alerts.as_dict(e) for e in events],
                    "next_before": events[-1].id if len(events) == limit else None})


def test_alert():
    """Send a test alert through every configured channel (past the rate limit) and say what each did."""
    config = current_app.config
    if not any(alerts.configured(config).values()):
        return error_response(409, "no alert channel is configured: set ALERT_WEBHOOK_URL, or ALERT_SMTP_HOST "
                                   "and ALERT_EMAIL_TO, and restart the panel")
    event = alerts.send_test(config)
    tried = {ch: state for ch, state in event["delivered"].items() if state != alerts.OFF}
    ok = all(state == alerts.SENT for state in tried.values())
    return jsonify({"status": "success" if ok else "error",
                    "message": "; ".join(f"{ch}: {state}" for ch, state in tried.items()),
                    "alert": event, "delivered": event["delivered"]})
def prometheus_metrics():
    """Prometheus text format; scrape with a viewer's Bearer token (authorization: credentials in Prometheus)."""
    return Response(metrics.render(current_app._get_current_object()), mimetype=None,
                    headers={"Content-Type": metrics.CONTENT_TYPE})
