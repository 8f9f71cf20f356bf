"""JSON routes for alerts: their history and a test alert."""
from flask import Blueprint, current_app, jsonify

from panel.health import alerts
from panel.security.auth import admin, viewer
from panel.web.errors import error_response
from panel.web.request_args import ID_MAX, whole_arg

alerts_api = Blueprint("alerts_api", __name__)


@alerts_api.get("/api/alerts")
@viewer
def list_alerts():
    """Alerts raised, newest first, with what each channel did; `before` (an id) pages back."""
    limit = whole_arg("limit", 1, alerts.PAGE_SIZE_MAX, default=100)
    before = whole_arg("before", 1, ID_MAX)
    events = alerts.events(limit, before)
    return jsonify({"alerts": [alerts.as_dict(e) for e in events],
                    "next_before": events[-1].id if len(events) == limit else None})


@alerts_api.post("/api/alerts/test")
@admin
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
