"""Runs: one execution each, as the results browser lists, filters, exports, deletes and stops them."""
import re
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from panel.errors import ValidationError
from panel.runlog import previews, retention, search
from panel.web.schemas.base import Answer, Body, Query, digits, text, whole, worded
from panel.web.schemas.common import CeleryState, RunStatus, Timestamp, page_size

STATE_WORD = "|".join(s for state in search.STATES for s in (state, state.lower()))
STATUS_LIST = rf"^(\s*({STATE_WORD})\s*(,\s*({STATE_WORD})\s*)*)?$"  # empty: no filter
DATE_OR_TIME = {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]}
Text = text(search.TEXT_MAX) | SkipJsonSchema[None]
When = Annotated[str, Field(json_schema_extra=DATE_OR_TIME, description="UTC unless it says")] | SkipJsonSchema[None]
Statuses = worded(STATUS_LIST, "must be one or more of " + ", ".join(search.STATES) + ", comma separated",
                  description="Celery states, comma separated") | SkipJsonSchema[None]


def parse_utc(field, text):
    """An ISO 8601 date or date-time as naive UTC (an offset is converted); 400 naming `field` otherwise."""
    raw = text.strip()
    try:
        value = datetime.fromisoformat(raw[:10] + raw[10:].upper().replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(field, f"must be an ISO 8601 date or date-time, e.g. 2026-11-21 or "
                                     f"2026-11-21T10:00:00Z; got {text!r}") from None
    if value.tzinfo is None:
        return value
    try:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    except OverflowError:  # a time at the very edge of the calendar, shifted past it: the edge itself
        return datetime.min if value.year == 1 else datetime.max


def _end_of(text, value):
    """A bare date means "to the end of that day"; past the calendar's end means no end."""
    if value is None or len(text.strip()) != 10:
        return value
    try:
        return value + timedelta(days=1)
    except OverflowError:
        return None


def window(since_text, until_text):
    """(since, until) as naive UTC, each optional; 400 naming the one at fault, or until when not after since."""
    since = parse_utc("since", since_text) if since_text is not None else None
    until = _end_of(until_text, parse_utc("until", until_text)) if until_text is not None else None
    if since and until and since >= until:
        raise ValidationError("until", "must be later than since")
    return since, until


class RunQuery(Query):
    """Filters of the results browser; every one optional."""

    task: Text = None
    status: Statuses = None
    worker: Text = None
    since: When = None
    until: When = Field(None, description="a bare date includes that day")
    q: Text = Field(None, description="a task id, part of one, or text in the args and kwargs")
    limit: page_size(search.PAGE_SIZE, search.PAGE_SIZE_MAX) = search.PAGE_SIZE
    cursor: Annotated[str, Field(
        max_length=200, description="next_cursor of the page before: only one this panel handed out, "
                                    "in the same sort")] | SkipJsonSchema[None] = None
    sort: Literal[search.SORTS] = Field("newest", description="newest or oldest first (queued), or slowest first "
                                                             "(runtime: only runs that started and ended)")

    _span: tuple = (None, None)

    @model_validator(mode="after")
    def _check_window(self):
        self._span = window(self.since, self.until)
        return self

    def to_filter(self):
        since, until = self._span
        states = tuple(dict.fromkeys(s.strip().upper() for s in re.split(",", self.status))) if self.status else ()
        clean = {name: (getattr(self, name) or "").strip() or None for name in ("task", "worker", "q")}
        return search.RunFilter(states=states, since=since, until=until, limit=self.limit, sort=self.sort,
                                cursor=search.decode_cursor(self.cursor, self.sort) if self.cursor else None, **clean)


class ExportQuery(RunQuery):
    format: Literal["csv", "json"] = "csv"


class Run(Answer):
    celery_task_id: str
    task: str | None = Field(description="the task type; null: nobody recorded it (read back without result_extended)")
    scheduled_task_id: int | None
    status: RunStatus
    state: CeleryState
    args: list[Any] | str | None = Field(description="a string when only the worker's repr of them is known "
                                                   "(a run recorded from task events), cut where the worker cut it, "
                                                   "or in a list when cut to a preview (see cut)")
    kwargs: dict[str, Any] | str | None
    queued_at: Timestamp | None
    started_at: Timestamp | None
    finished_at: Timestamp | None
    runtime_s: float | None
    worker: str | None
    result: str | None
    error: str | None
    traceback: str | None = Field(None, description="in a run's detail, not in lists")
    retries: int
    next_retry_at: Timestamp | None
    eta: Timestamp | None = Field(description="sent to start no sooner than this")
    retry_of: str | None = Field(description="the run this one retried (its Celery task id)")
    args_known: bool = Field(description="false: nobody recorded the arguments (never seen sent, no result_extended)")
    cut: dict[Literal[tuple(previews.BOUNDS)], int] = Field(description=(
        "in lists and exports: the values cut to a preview (a string, their first characters: of the JSON text for "
        "args and kwargs), each with its whole size in bytes (UTF-8); {} in a run's own JSON, whose values are whole"))


class RunPage(Answer):
    runs: list[Run]
    next_cursor: str | None
    filter: dict[str, str] = Field(description="the filter as query arguments, for the next page's link")


class ScheduleRef(Answer):
    id: int
    name: str


class Progress(Answer):
    state: str = Field(description="the custom state the task reported, e.g. PROGRESS")
    meta: Any = Field(description="the meta it reported with it, e.g. {\"done\": 3, \"total\": 10}")


class RunDetail(Run):
    scheduled_task: ScheduleRef | None
    retried_by: list[str] = Field(description="the runs that retried this one, oldest first (Celery task ids)")
    progress: Progress | None = Field(description="while the run runs: the custom state and meta its task last "
                                                  "wrote with update_state, read from the result backend; None "
                                                  "otherwise")


class PerMinuteQuery(Query):
    minutes: digits(ge=1, le=24 * 60) = 60


class Minute(Answer):
    minute: str = Field(description="YYYY-MM-DDTHH:MMZ")
    succeeded: int
    failed: int


class PerMinute(Answer):
    minutes: list[Minute]


Finished = Literal["SUCCESS", "FAILURE", "REVOKED"]
Days = whole(ge=0, le=retention.KEEP_DAYS_MAX)


class RunDelete(Body):
    """Exactly one of older_than_days and before; only finished states."""

    model_config = {"json_schema_extra": {"oneOf": [{"required": ["older_than_days"]}, {"required": ["before"]}]}}
    older_than_days: Days | SkipJsonSchema[None] = None
    before: Annotated[str, Field(json_schema_extra=DATE_OR_TIME)] | SkipJsonSchema[None] = None
    states: Annotated[list[Finished], Field(min_length=1)] = ["SUCCESS"]
    task: text(200) | SkipJsonSchema[None] = None
    dry_run: bool = False

    @model_validator(mode="after")
    def _one_date(self):
        if (self.older_than_days is None) == (self.before is None):
            raise ValidationError("older_than_days", "give either older_than_days or before (an ISO date)")
        return self

    def cutoff(self, now):
        if self.before is not None:
            return parse_utc("before", self.before)
        return now - timedelta(days=self.older_than_days)


class Deleted(Answer):
    status: Literal["success"]
    message: str
    dry_run: bool
    deleted: int | None = None
    would_delete: int | None = None


class Cleanup(Body):
    days: Days = retention.DEFAULT_KEEP_DAYS
    include_failures: bool = False
    dry_run: bool = False


class CleanedUp(Answer):
    status: Literal["success"]
    message: str
    deleted: int
    would_delete: int | None
    states: list[str]
    before: Timestamp
    dry_run: bool


class Cancelled(Answer):
    status: Literal["success"]
    message: str
    confirmed_stopped: bool
    revoked_queued: list[str]
    stopped: list[str]
    forced: list[str]
    not_confirmed: list[str]


class Scheduled(Answer):
    worker: str
    eta: str | None


class Where(Answer):
    active: list[str]
    reserved: list[str]
    scheduled: list[Scheduled]
    workers: list[str]


class Step(Answer):
    step: str
    ok: bool


class RetriesStopped(Answer):
    status: Literal["success", "error"]
    message: str
    task_id: str
    ok: bool
    before: Where
    after: Where
    record: Run | None
    steps: list[Step]


class Retried(Answer):
    status: Literal["success"]
    message: str
    celery_task_id: str = Field(description="the new run's")
    retry_of: str = Field(description="the run sent again")
    queue: str | None = Field(description="the queue it went to (None: the task type's default)")
