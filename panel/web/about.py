"""The panel about itself: liveness, who you are, the audit log, this API's document."""
from flask import current_app, g, jsonify

from panel.security import audit
from panel.web import contract
from panel.web.contract import api
from panel.web.schemas.about import Alive, AuditPage, AuditQuery, Me


@api(Alive, public=True)
def healthz():
    """Liveness: the process answers (no login needed)."""
    return jsonify({"status": "ok"})


@api(Me)
def me():
    """Who the panel thinks you are, and what you may do."""
    identity = g.identity
    return jsonify({"username": identity.username, "role": identity.role, "via": identity.via})


@api(AuditPage, 400)
def audit_events(query: AuditQuery):
    """The audit log, newest first (admin); `before` (an id) pages back, `actor` and `action` filter."""
    events = audit.events(query.limit, query.before, query.actor, query.action)
    return jsonify({"events": [audit.as_dict(e) for e in events],
                    "next_before": events[-1].id if len(events) == query.limit else None})


@api(content={"application/json": {"schema": {"type": "object"}}})
def openapi_document():
    """This document: every JSON route, what it reads and what it answers."""
    registered = {name for name in current_app.extensions["celery"].tasks if not name.startswith("celery.")}
    return jsonify(contract.document(registered))
