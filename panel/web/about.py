"""The panel about itself: liveness, who you are, the audit log, this API's document."""
from flask import g, jsonify, request

from panel.security import audit
from panel.web.request_args import ID_MAX, whole_arg


def healthz():
    """Liveness: the process answers (no login needed)."""
    return jsonify({"status": "ok"})


def me():
    """Who the panel thinks you are, and what you may do."""
    identity = g.identity
    return jsonify({"username": identity.username, "role": identity.role, "via": identity.via})


def audit_events():
    """The audit log, newest first; `before` (an id) pages back, `actor` and `action` filter."""
    limit = whole_arg("limit", 1, audit.PAGE_SIZE_MAX, default=100)
    before = whole_arg("before", 1, ID_MAX)
    events = audit.events(limit, before, request.args.get("actor"), request.args.get("action"))
    return jsonify({"events": [audit.as_dict(e) for e in events],
                    "next_before": events[-1].id if len(events) == limit else None})


def openapi_document():
    """This document."""
    from panel.web.openapi import document
    return jsonify(document())
