"""Health: the health view, the watchdog, the restart history, alerts."""
from typing import Literal

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from panel.web.schemas.base import Answer, Body, Query
from panel.web.schemas.common import Before, Pids, Program, StateName, Timestamp, page_size
from panel.web.schemas.processes import Watchdog


class Check(Answer):
    ok: bool
    latency_ms: float | None = None
    error: str | None = None


class BackendCheck(Check):
    kind: Literal["redis", "sqlalchemy", "django-db", "rpc", "other"] = Field(
        description="the project's result store: Redis, Celery's SQLAlchemy table, django-celery-results' table "
                    "(read through RESULTS_DATABASE_URL), rpc:// (keeps nothing), or another Celery backend")
    listable: bool = Field(description="runs that ended while the panel was away can be read back from it")
    note: str | None = Field(None, description="what the panel cannot do with this store, said plainly")


class ProgramHealth(Answer):
    active: bool
    pids: Pids
    state: StateName
    watchdog: Watchdog | None


class AttachedApp(Answer):
    name: str = Field(description="the -A value of the Celery app whose worker and Beat the panel runs")
    workdir: str = Field(description="the folder its processes run in")
    embedded: bool = Field(description="true for the panel's own demo app (no CELERY_APP set)")
    schedules_sent_by: Literal["beat", "panel"] = Field(
        description="who sends the schedules kept in the panel: the embedded app's Beat, or (with your project "
                    "attached) the panel's background process")
    schedules_paused: bool | None = Field(description="Beat was stopped through the panel, so they wait "
                                                      "(null when the database does not answer)")


class Dispatch(Answer):
    at: Timestamp
    task: str
    age_s: float | None


class Oldest(Answer):
    queue: str | None = None
    task_id: str | None = None
    task: str | None = None
    queued_at: Timestamp | None = None
    age_s: float | None = None
    error: str | None = Field(None, description="when the queues could not be read")


class SettingWarning(Answer):
    setting: str = Field(description="the project's Celery setting, e.g. result_extended")
    value: bool | str | None = Field(description="its value in the project")
    line: str | None = Field(description="the line to add to the project's Celery settings; null for a URL")
    message: str = Field(description="what the panel loses with it")
    workers: list[str] = Field(description="the workers it was read from that run with it (empty: from the report)")


class ProjectFlags(Answer):
    worker_send_task_events: bool
    task_send_sent_event: bool
    result_extended: bool
    task_ignore_result: bool
    task_track_started: bool


class ProjectSettings(Answer):
    source: Literal["workers", "report", "panel", "unread"] = Field(
        description="where they were read: the running workers' inspect conf, `celery -A <app> report` run with "
                    "the project's own celery (no worker answered), the panel's own (the embedded app), or unread")
    workers: list[str] = Field(description="the workers that answered")
    read_at: Timestamp = Field(description="when they were read (cached for a short while)")
    error: str | None = Field(description="why they could not be read, or why the workers were not asked")
    broker_url: str | None = Field(description="the project's broker, passwords masked")
    result_backend: str | None = Field(description="the project's result backend, passwords masked")
    broker_from: Literal["panel", "project", "default"] = Field(
        description="where the panel's broker comes from: its own setting, the project's, or the code default")
    result_backend_from: Literal["panel", "project", "default"]
    settings: ProjectFlags = Field(description="the project's settings that decide what the panel can see")
    warnings: list[SettingWarning] = Field(description="each setting that blinds the panel, with the line to add; "
                                                       "a broker or result backend not the project's")


class Health(Answer):
    status: Literal["ok", "degraded", "down"]
    checked_at: Timestamp
    broker: Check
    database: Check
    backend: BackendCheck
    background_actor_pid: int | None
    app: AttachedApp
    worker: ProgramHealth
    beat: ProgramHealth
    last_beat_dispatch: Dispatch | None
    oldest_queued: Oldest | None
    project: ProjectSettings


class Watchdogs(Answer):
    watchdog: dict[Program, Watchdog]


class WatchdogSwitch(Body):
    enabled: bool = Field(description="on: keep the program running (and clear FATAL); off: leave it alone")


class Switched(Answer):
    status: Literal["success"]
    message: str
    watchdog: Watchdog


class EventsQuery(Query):
    program: Program | SkipJsonSchema[None] = Field(None, description="worker or beat")
    limit: page_size(50, 500) = 50
    before: Before = None


class ProcessEvent(Answer):
    id: int
    at: Timestamp
    program: Program
    action: str
    outcome: str
    pids: Pids
    message: str
    cause: str
    actor: str
    exit_status: int | None
    host: str | None = Field(description="the host of the pane it happened on; null: the panel's own host")


class ProcessEvents(Answer):
    events: list[ProcessEvent]
    next_before: int | None


class AlertsQuery(Query):
    limit: page_size(100, 500) = 100
    before: Before = None


class Alert(Answer):
    id: int
    at: Timestamp
    kind: str
    key: str
    subject: str
    body: str
    delivered: dict[str, str] = Field(description='per channel: "sent", "failed: <reason>", "off" or "rate-limited"')


class Alerts(Answer):
    alerts: list[Alert]
    next_before: int | None


class AlertTested(Answer):
    status: Literal["success", "error"]
    message: str
    alert: Alert
    delivered: dict[str, str]
