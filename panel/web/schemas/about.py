"""The panel about itself: liveness, who you are, the audit log."""
from typing import Literal

from pydantic.json_schema import SkipJsonSchema

from panel.web.schemas.base import Answer, Query, text
from panel.web.schemas.common import Before, Timestamp, page_size


class Alive(Answer):
    status: Literal["ok"]


class Me(Answer):
    username: str
    role: Literal["viewer", "operator", "admin"]
    via: Literal["session", "token", "off"]


class AuditQuery(Query):
    limit: page_size(100, 500) = 100
    before: Before = None
    actor: text(80) | SkipJsonSchema[None] = None
    action: text(80) | SkipJsonSchema[None] = None


class AuditEvent(Answer):
    id: int
    at: Timestamp
    actor: str
    source: str
    action: str
    target: str
    outcome: str
    detail: str


class AuditPage(Answer):
    events: list[AuditEvent]
    next_before: int | None
