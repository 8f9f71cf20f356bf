"""OpenAPI entries for alerts (merged by panel.openapi)."""
from panel.health.alerts import PAGE_SIZE_MAX
from panel.web.openapi import INT, STR, json_body, obj, op, q

DELIVERED = {"type": "object", "description": 'per channel (webhook, email): "sent", "failed: <reason>", "off" '
                                             'or "rate-limited"', "additionalProperties": STR}
ALERT = obj(id=INT, at=STR, kind=STR, key=STR, subject=STR, body=STR, delivered=DELIVERED)

PATHS = {
    "/api/alerts": {"get": op(
        "Alerts raised, newest first, with what each channel did; before (an id) pages back",
        json_body(obj(alerts={"type": "array", "items": ALERT}, next_before={"nullable": True, **INT})), 400,
        params=[q("limit", {"type": "integer", "minimum": 1, "maximum": PAGE_SIZE_MAX}),
                q("before", {"type": "integer", "minimum": 1}, "next_before of the page before")])},
    "/api/alerts/test": {"post": op(
        "Send a test alert through every configured channel, past the rate limit (admin); 409 when none is",
        json_body(obj(status=STR, message=STR, alert=ALERT, delivered=DELIVERED)), 409)},
}
