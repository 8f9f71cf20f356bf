"""The hosts' pane: every host's supervisord with the worker's and Beat's states, and one program's control."""
from typing import Literal

from pydantic import Field

from panel.web.schemas.base import Answer
from panel.web.schemas.common import Program

SupervisorState = Literal["STOPPED", "STARTING", "RUNNING", "BACKOFF", "STOPPING", "EXITED", "FATAL", "UNKNOWN"]


class HostProgram(Answer):
    name: Program = Field(description="worker or beat")
    program: str = Field(description="Supervisor's name for it (SUPERVISOR_PROGRAMS)")
    state: SupervisorState = Field(description="Supervisor's own state")
    pid: int | None = Field(description="null while it is not running")
    uptime_s: int | None = Field(description="seconds since it started (null while it is not running)")


class HostNode(Answer):
    name: str = Field(description="the Celery node name, as events give it")
    online: bool
    pid: int | None


class Host(Answer):
    name: str = Field(description="the host's name in SUPERVISORS")
    reachable: bool
    error: str | None = Field(description="why the host's supervisord did not answer (never with its password)")
    programs: list[HostProgram] = Field(description="the programs this host has: a host without Beat lists only "
                                                    "its worker")
    nodes: list[HostNode] = Field(description="Celery nodes seen through events on this host: its worker program's "
                                              "PID, or the host's name after the node name's @")


class HostOutcome(Answer):
    """What Stop Celery or Start Celery did on one host."""

    host: str
    ok: bool
    message: str


class Hosts(Answer):
    hosts: list[Host]


class HostAction(HostProgram):
    status: Literal["success"]
    host: str
    action: Literal["start", "stop", "restart"]
    message: str
