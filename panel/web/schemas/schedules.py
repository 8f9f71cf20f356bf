"""Schedules (served at /api/tasks): what a schedule is, and what creating or editing one takes."""
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from panel.beat.schedules import INTERVAL_MAX_S, NAME_MAX, parse_crontab
from panel.errors import ValidationError
from panel.web.schemas.base import Answer, Args, Body, Kwargs, Query, text, whole, worded
from panel.web.schemas.common import RunStatus, Timestamp, page_size
from panel.web.schemas.runs import Run

# Five fields of crontab characters; Celery's parser then decides (it refuses "31 of February", say).
CRONTAB = r"^\s*[0-9a-zA-Z*/,-]+(\s+[0-9a-zA-Z*/,-]+){4}\s*$"
Name = Annotated[text(NAME_MAX, f"is required, 1 to {NAME_MAX} characters", description="unique; spaces trimmed"),
                 Field(min_length=1)]
TaskType = Annotated[text(NAME_MAX, "is required: a registered task type", description="a registered task type"),
                     Field(min_length=1)]
Interval = whole(ge=1, le=INTERVAL_MAX_S, description="seconds between runs")
Crontab = Annotated[worded(CRONTAB, "needs 5 fields (minute hour day month weekday)",
                          description="minute hour day month weekday"), Field(max_length=120)]
EXACTLY_ONE = {"oneOf": [{"required": ["interval_seconds"], "properties": {"interval_seconds": {"type": "integer"}}},
                         {"required": ["crontab"], "properties": {"crontab": {"type": "string"}}}]}
CatchUp = Annotated[Literal["skip", "once", "all"], Field(
    description="runs that fell due while no Beat ran: skip them, send one for all (the default), or send each "
                "(at most 100)")]
NOT_BOTH = {"not": {"required": ["interval_seconds", "crontab"],
                    "properties": {"interval_seconds": {"type": "integer"}, "crontab": {"type": "string"}}}}


class _ScheduleFields(Body):
    @field_validator("name", check_fields=False)
    @classmethod
    def _trimmed(cls, name):
        return name.strip() if name is not None else name

    @field_validator("crontab", check_fields=False)
    @classmethod
    def _parses(cls, expr):
        if expr is None:
            return None
        parse_crontab(expr)  # ValidationError("crontab", ...) when Celery cannot read it
        return " ".join(expr.split())

    def changes(self):
        """The fields given, as the schedule service takes them: an interval clears a crontab and back."""
        given = self.model_dump(exclude_unset=True)
        if given.get("interval_seconds") is not None:
            given["crontab"] = None
        elif given.get("crontab") is not None:
            given["interval_seconds"] = None
        else:
            given.pop("interval_seconds", None), given.pop("crontab", None)
        return given


class ScheduleIn(_ScheduleFields):
    """A new schedule: exactly one of interval_seconds and crontab."""

    model_config = {"json_schema_extra": EXACTLY_ONE}
    name: Name
    task: TaskType
    args: Args = []
    kwargs: Kwargs = {}
    interval_seconds: Interval | None = None
    crontab: Crontab | None = None
    enabled: bool = True
    catch_up: CatchUp = "once"

    @model_validator(mode="after")
    def _exactly_one(self):
        if self.interval_seconds is not None and self.crontab is not None:
            raise ValidationError("interval_seconds", "give an interval or a crontab, not both")
        if self.interval_seconds is None and self.crontab is None:
            raise ValidationError("interval_seconds", "a schedule needs an interval above zero or a crontab")
        return self

    def changes(self):
        return dict(super().changes(), enabled=self.enabled, args=self.args, kwargs=self.kwargs,
                    catch_up=self.catch_up)


class SchedulePatch(_ScheduleFields):
    """An edit: only the fields given change; an interval replaces a crontab and back."""

    model_config = {"json_schema_extra": NOT_BOTH}
    name: Name | SkipJsonSchema[None] = None
    task: TaskType | SkipJsonSchema[None] = None
    args: Args | SkipJsonSchema[None] = None
    kwargs: Kwargs | SkipJsonSchema[None] = None
    interval_seconds: Interval | None = None
    crontab: Crontab | None = None
    enabled: bool | SkipJsonSchema[None] = None
    catch_up: CatchUp | SkipJsonSchema[None] = None

    @model_validator(mode="after")
    def _not_both(self):
        if self.interval_seconds is not None and self.crontab is not None:
            raise ValidationError("interval_seconds", "give an interval or a crontab, not both")
        return self


class Schedule(Answer):
    id: int
    name: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    interval_seconds: int | None = None
    crontab: str | None = None
    enabled: bool
    catch_up: CatchUp
    status: RunStatus
    last_run_at: Timestamp | None
    next_run_at: Timestamp | None
    run_count: int
    disabled_reason: str | None


class Schedules(Answer):
    tasks: list[Schedule]


class RunsQuery(Query):
    limit: page_size(100, 500) = 100


class ScheduleRuns(Answer):
    runs: list[Run]


class SentEach(Answer):
    name: str
    celery_task_id: str


class SentAll(Answer):
    status: Literal["success"]
    message: str
    count: int
    celery_task_ids: list[str]
    tasks: list[SentEach]


class Disabled(Answer):
    status: Literal["success"]
    message: str
    disabled: int


class Enabled(Answer):
    status: Literal["success"]
    message: str
    enabled: int
