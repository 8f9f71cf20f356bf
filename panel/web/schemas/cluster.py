"""The cluster: workers and their controls, the task types they register, queues."""
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from panel.cluster import task_types
from panel.errors import ValidationError
from panel.web import limits
from panel.web.schemas.base import Answer, Args, Body, Kwargs, Query, whole, worded
from panel.web.schemas.common import Timestamp, page_size

NoReply = Literal["no reply"]
QUEUE = r"^[A-Za-z0-9_.:@-]{0,200}$"
AUTOSCALE_MAX = 1024  # the document's bound; WORKER_POOL_MAX (32) is the cap a call meets
Seconds = Annotated[float, Field(gt=0, le=task_types.TIME_LIMIT_MAX_S)]
Later = Annotated[float, Field(gt=0, le=task_types.LATER_LIMIT_S)]
MOMENT_WORDS = "must be a time in ISO 8601 with its zone, like 2030-01-31T12:00:00Z or 2030-01-31T13:00:00+01:00"
Moment = worded(task_types.MOMENT.pattern, MOMENT_WORDS)


def moment(field, text):
    """A time as text: its form, a real date, and one the calendar still holds once shifted to UTC (Python's dates
    end at 9999-12-31: 9999-12-31T23:59:59-14:00 is past that in UTC); 400 naming `field` otherwise."""
    if not task_types.MOMENT.search(text):
        raise ValidationError(field, MOMENT_WORDS + (", or seconds from now" if field == "expires" else ""))
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)
    except ValueError as exc:  # the form passed, the calendar did not (a 31st of February)
        raise ValidationError(field, f"is not a real time: {exc}") from None
    except OverflowError:
        raise ValidationError(field, f"is {text}, outside the calendar once shifted to UTC (dates run from "
                                     f"0001-01-01 to 9999-12-31 UTC)") from None
    return text


class Pool(Answer):
    type: str | None
    size: int | None
    max_concurrency: int | None = None
    processes: list[int] | None = None
    autoscaler: dict[str, Any] | None = None


class Worker(Answer):
    name: str
    hostname: str
    pid: int | None
    status: Literal["online", "offline"]
    online: bool
    first_seen_at: Timestamp | None
    last_heartbeat_at: Timestamp | None
    heartbeat_age_s: float | None
    offline_at: Timestamp | None
    heartbeat_freq_s: float
    sw_ver: str
    sw_sys: str
    active: int
    processed: int = Field(description="the worker's own count: tasks it started since its process started "
                                       "(from its heartbeat)")
    succeeded: int = Field(description="the panel's count: task-succeeded events it saw from this worker process "
                                       "since it first saw that process; ends while the panel was down are not in "
                                       "it, so succeeded + failed need not reach processed")
    failed: int = Field(description="the panel's count of task-failed events, like succeeded")
    loadavg: list[float] | None
    pool: Pool
    queues: list[str]
    registered_count: int
    info_at: Timestamp | None


class Workers(Answer):
    workers: list[Worker]


class Live(Answer):
    """What the worker answers now, part by part; "no reply" for a part it did not answer in time."""

    stats: dict[str, Any] | NoReply
    active: list[dict[str, Any]] | NoReply
    reserved: list[dict[str, Any]] | NoReply
    scheduled: list[dict[str, Any]] | NoReply
    registered: list[str] | NoReply
    active_queues: list[dict[str, Any]] | NoReply


class WorkerDetail(Worker):
    live: Live
    no_reply: list[str]
    registered: list[str]


class Control(Answer):
    status: Literal["success", "error"]
    worker: str
    command: str
    reply: dict[str, Any] | NoReply | str
    message: str


class PoolStep(Body):
    n: whole(ge=1, le=limits.POOL_STEP_MAX) = 1


class Autoscale(Body):
    """The autoscale range; min may not be above max."""

    max: whole(ge=1, le=AUTOSCALE_MAX)
    min: whole(ge=0, le=AUTOSCALE_MAX) = 0

    @model_validator(mode="after")
    def _ordered(self):
        if self.min > self.max:
            raise ValidationError("min", f"must be a whole number from 0 to {self.max} (max)")
        return self


class TaskType(Answer):
    name: str
    signature: str | None
    doc: str
    known_to_panel: bool
    workers: list[str]
    rate_limit: str | int | None
    time_limit: float | None
    soft_time_limit: float | None


class TaskTypes(Answer):
    tasks: list[TaskType]


class SendIn(Body):
    """A run now, or later: `countdown` seconds from now or at `eta` (not both); the later bound is
    SEND_LATER_MAX_S (1500 s by default), an eta must be in the future, and an expiry after the start."""

    args: Args = []
    kwargs: Kwargs = {}
    queue: worded(QUEUE, "must be a queue name (letters, digits and _ . : @ -)") | None = Field(
        None, description="empty or null: the task's own queue")
    countdown: Later | None = Field(None, description="start no sooner than this many seconds from now")
    eta: Moment | None = Field(None, description="start no sooner than this time (ISO 8601 with its zone)")
    expires: Later | Moment | None = Field(
        None, description="seconds from now, or a time (ISO 8601 with its zone): not started by then, it is revoked")
    priority: whole(ge=0, le=9) | None = Field(
        None, description="0-9: on Redis 0 is taken first; on RabbitMQ 9 is, for a queue declared with x-max-priority")

    @field_validator("eta", "expires", mode="before")
    @classmethod
    def _a_time_utc_holds(cls, value, info):
        """Checked before the union: a bad time is named as one, not as "must be a number"."""
        return moment(info.field_name, value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_start(self):
        if self.countdown is not None and self.eta is not None:
            raise ValidationError("eta", "give a countdown or an eta, not both")
        return self


class RateLimitIn(Body):
    rate_limit: worded(task_types.RATE_LIMIT.pattern, 'must look like "10", "10/s", "10/m" or "10/h" ("0" removes '
                       'it)') | whole(ge=0, le=10**9 - 1)


class TimeLimitIn(Body):
    """Celery sets both limits at once: one left out or null is removed; soft may not be above hard."""

    soft: Seconds | None = None
    hard: Seconds | None = None

    @model_validator(mode="after")
    def _ordered(self):
        if self.soft is not None and self.hard is not None and self.soft > self.hard:
            raise ValidationError("soft", "the soft limit must not be above the hard limit")
        return self


class Limits(Answer):
    status: Literal["success", "error"]
    message: str
    applied_by: list[str]
    replies: dict[str, dict[str, Any] | NoReply]


class Queue(Answer):
    name: str
    messages: int
    consumers: list[str]
    paused: bool


class Queues(Answer):
    queues: list[Queue]


class PurgeIn(Body):
    confirm: Literal[True] = Field(description="purging deletes messages for good")

    @model_validator(mode="before")
    @classmethod
    def _confirmed(cls, data):
        if not isinstance(data, dict) or data.get("confirm") is not True:
            raise ValidationError("confirm", 'purging deletes messages for good: send {"confirm": true}')
        return data


class Purged(Answer):
    status: Literal["success"]
    queue: str
    removed: int
    message: str



class QueueControl(Answer):
    """A pause or resume: kept at once; `replies` are the online consumers' own answers."""

    status: Literal["success", "error"]
    queue: str
    paused: bool
    applied_by: list[str]
    replies: dict[str, dict[str, Any] | NoReply]
    message: str


class PeekQuery(Query):
    limit: page_size(20, 100) = 20


class WaitingMessage(Answer):
    position: int
    task: str | None
    id: str | None = Field(description="the task id, from the headers (null when they cannot be read)")
    args: str = Field(description="JSON text cut to a preview; empty when the message cannot be decoded")
    kwargs: str
    eta: str | None
    expires: str | None
    retries: int
    priority: int | None
    size: int = Field(description="bytes of the message's body")
    undecodable: str | None = Field(description="null: read; else why it cannot be decoded, e.g. \"could not be "
                                                "decoded: its body is nested deeper than the JSON parser reads\"")


class QueueMessages(Answer):
    """The first `limit` waiting messages in the order a worker takes them (nothing taken or moved)."""

    queue: str
    paused: bool
    waiting: int
    shown: int
    messages: list[WaitingMessage]
