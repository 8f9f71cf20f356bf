"""Messages a worker died on, kept out of their queue: listed, read, deleted, requeued."""
from typing import Literal

from panel.web.schemas.base import Answer
from panel.web.schemas.common import Timestamp


class Kept(Answer):
    celery_task_id: str
    task_name: str
    queue: str
    deaths: int
    evidence: str
    first_seen: Timestamp
    quarantined_at: Timestamp
    size: int


class Quarantine(Answer):
    messages: list[Kept]


class KeptMessage(Kept):
    args: str
    kwargs: str
    headers: dict


class Released(Answer):
    status: Literal["success"]
    message: str
    celery_task_id: str
