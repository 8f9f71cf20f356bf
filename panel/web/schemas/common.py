"""Types every subject uses: times, ids, process states, paging."""
from typing import Annotated, Literal

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from panel.web.schemas.base import Answer, digits

ID_MAX = 2**62  # past any id a table will reach, and inside every database's integer
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"}, description="UTC, ISO 8601 with Z")]
Pids = list[int]
# UNKNOWN: under PROCESS_MANAGER=supervisor, while this host's supervisord does not answer.
StateName = Literal["STOPPED", "STARTING", "RUNNING", "STOPPING", "EXITED", "BACKOFF", "FATAL", "UNKNOWN"]
Program = Literal["worker", "beat"]
CeleryState = Literal["PENDING", "RECEIVED", "STARTED", "SUCCESS", "FAILURE", "RETRY", "REVOKED", "REJECTED", "ENDED"]
RunStatus = Literal["pending", "running", "completed", "failed", "unknown"]
Before = digits(ge=1, le=ID_MAX, description="an id: the page before ends here") | SkipJsonSchema[None]


def page_size(default, high):
    """A page size query argument from 1 to `high`."""
    return digits(ge=1, le=high, description=f"at most this many (default {default})")


class Done(Answer):
    status: Literal["success"]
    message: str


class Sent(Done):
    celery_task_id: str
