"""Health: the health view, the watchdog switches, the restart history, alerts, Prometheus metrics."""
from flask import Response, current_app, jsonify

from panel import background
from panel.errors import ConflictError
from panel.health import alerts, checks, metrics
from panel.supervision import history, watchdog
from panel.web.contract import api
from panel.web.schemas.health import (
    Alerts,
    AlertsQuery,
    AlertTested,
    EventsQuery,
    Health,
    ProcessEvents,
    Switched,
    Watchdogs,
    WatchdogSwitch,
)

PROMETHEUS = {"text/plain": {"schema": {"type": "string"}}}


@api(Health)
def health_view():
    """Broker and database with latency, worker and Beat with the watchdog, Beat's last send, the oldest message."""
    app = current_app._get_current_object()
    return jsonify(checks.report(app, background.actor_pid(app.config["INSTANCE_PATH"]), watchdog.view))


@api(Watchdogs)
def watchdog_states():
    """The watchdog of the worker and of Beat: switched on or off, its state, why."""
    return jsonify({"watchdog": watchdog.view()})


@api(Switched, 400, 409)
def switch_watchdog(program, json: WatchdogSwitch):
    """On keeps the program running (and clears FATAL); off leaves it alone. 409 under PROCESS_MANAGER=supervisor."""
    if current_app.config["PROCESS_MANAGER"] == "supervisor":
        raise ConflictError(f"the {program} is a program of this host's supervisord (PROCESS_MANAGER=supervisor): "
                            "Supervisor restarts it after a crash, so the panel's watchdog stands down")
    on = json.enabled
    row = watchdog.set_enabled(program, on, f"switched {'on' if on else 'off'} from the panel")
    return jsonify({"status": "success", "message": f"Watchdog for {program} {'on' if on else 'off'}",
                    "watchdog": watchdog.as_dict(row)})


@api(ProcessEvents, 400)
def process_events(query: EventsQuery):
    """The restart history, newest first: starts, stops, restarts, crashes, watchdog actions."""
    found = history.events(query.limit, query.before, query.program)
    full = len(found) == query.limit
    return jsonify({"events": [history.as_dict(e) for e in found], "next_before": found[-1].id if full else None})


@api(Alerts, 400)
def list_alerts(query: AlertsQuery):
    """Alerts raised, newest first, with what each channel did; `before` (an id) pages back."""
    events = alerts.events(query.limit, query.before)
    return jsonify({"alerts": [alerts.as_dict(e) for e in events],
                    "next_before": events[-1].id if len(events) == query.limit else None})


@api(AlertTested, 409)
def test_alert():
    """Send a test alert through every configured channel, past the rate limit (admin); 409 when none is."""
    config = current_app.config
    if not any(alerts.configured(config).values()):
        raise ConflictError("no alert channel is configured: set ALERT_WEBHOOK_URL, or ALERT_SMTP_HOST "
                            "and ALERT_EMAIL_TO, and restart the panel")
    event = alerts.send_test(config)
    tried = {ch: state for ch, state in event["delivered"].items() if state != alerts.OFF}
    ok = all(state == alerts.SENT for state in tried.values())
    return jsonify({"status": "success" if ok else "error",
                    "message": "; ".join(f"{ch}: {state}" for ch, state in tried.items()),
                    "alert": event, "delivered": event["delivered"]})


@api(content=PROMETHEUS)
def prometheus_metrics():
    """Prometheus text format: workers, Beat, broker, runs by state, queue lengths, run durations.

    Scrape with a viewer's Bearer token (authorization: credentials in Prometheus).
    """
    body, content_type = metrics.render(current_app._get_current_object())
    return Response(body, headers={"Content-Type": content_type})
