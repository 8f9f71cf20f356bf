"""The process endpoints: Beat's status and restart, the toolbar's Start and Stop Celery, process logs."""
from typing import Literal

from pydantic import Field

from panel.web.schemas.base import Answer, Query, digits
from panel.web.schemas.common import Pids, Program, StateName, Timestamp
from panel.web.schemas.hosts import Host, HostOutcome

HOSTS = Field(description="every host of SUPERVISORS (and this one under PROCESS_MANAGER=supervisor), as /api/hosts")
OUTCOMES = Field(description="per host of the pane besides this one's own worker and Beat: what happened there")


class BeatStatus(Answer):
    running: bool
    pids: Pids
    count: int
    hosts: list[Host] = HOSTS


class BeatRestarted(Answer):
    """Restarted (success true, old and new PIDs), or not running (success false with the instructions)."""

    success: bool
    message: str
    old_pids: Pids | None = None
    new_pids: Pids | None = None
    not_running: bool | None = None
    instructions: str | None = None
    manual_start_command: str | None = None


class Watchdog(Answer):
    program: Program
    enabled: bool
    desired: Literal["running", "stopped"]
    state: StateName
    failures: int
    retry_at: Timestamp | None
    reason: str
    pids: Pids
    changed_at: Timestamp | None


class ProcessStatus(Answer):
    active: bool
    status: Literal["active", "inactive"]
    pids: Pids
    count: int
    state: StateName
    uptime_s: int | None = Field(description="seconds since its oldest main process started (null: not running)")
    watchdog: Watchdog | None


class WorkerStatus(ProcessStatus):
    pool_processes: int
    pool_pids: dict[str, Pids] = Field(description="the worker's PID -> its pool processes' PIDs")


class Progress(Answer):
    """A start or stop under way: what it waits for and how long it may still take."""

    action: Literal["stopping", "starting"]
    running_tasks: int | None = Field(description="tasks the stop waits for (null: unknown)")
    grace_left_s: int = Field(description="seconds left before the stop kills what is left, or the start gives up")


class CeleryStatus(Answer):
    status: Literal["running", "stopped"]
    running: bool
    worker: WorkerStatus
    beat: ProcessStatus
    progress: Progress | None = Field(None, description="a start or stop in progress, from any panel process")
    manager: Literal["panel", "supervisor"] = Field(description="who keeps the worker and Beat (PROCESS_MANAGER)")
    hosts: list[Host] = HOSTS
    as_of: Timestamp = Field(description="when this status was read: answers within max_age_s share one reading")
    max_age_s: float = Field(description="the oldest this status can be (STATUS_SHARE_S); a control action "
                                         "through the panel makes the next answer fresh")


class Started(Answer):
    status: Literal["success", "error"]
    message: str
    worker_pids: Pids
    beat_pids: Pids
    log_tail: dict[str, str] | None = Field(None, description="per program that failed: the end of its log")
    hosts: list[HostOutcome] = OUTCOMES


class Stopped(Answer):
    status: Literal["success", "error"]
    message: str
    workers_killed: int
    beats_killed: int
    hosts: list[HostOutcome] = OUTCOMES


class LogQuery(Query):
    lines: digits(ge=1, le=1000, description="how many of the last lines") = 50


class ProcessLog(Answer):
    program: Program
    path: str
    exists: bool
    lines: list[str]
