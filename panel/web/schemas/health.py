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


class Health(Answer):
    status: Literal["ok", "degraded", "down"]
    checked_at: Timestamp
    broker: Check
    database: Check
    background_actor_pid: int | None
    app: AttachedApp
    worker: ProgramHealth
    beat: ProgramHealth
    last_beat_dispatch: Dispatch | None
    oldest_queued: Oldest | None


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
