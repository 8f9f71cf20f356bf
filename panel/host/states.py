"""Process states as named data, and the one door every change goes through (Supervisor's model)."""
import logging
import threading
from enum import Enum

from panel.errors import IllegalTransition

log = logging.getLogger("panel.states")


class State(str, Enum):
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    EXITED = "EXITED"
    BACKOFF = "BACKOFF"
    FATAL = "FATAL"


ALLOWED = {
    State.STOPPED: {State.STARTING, State.RUNNING},
    State.STARTING: {State.RUNNING, State.BACKOFF, State.FATAL, State.EXITED, State.STOPPING},
    State.RUNNING: {State.STOPPING, State.EXITED},
    State.STOPPING: {State.STOPPED},
    State.EXITED: {State.STARTING, State.STOPPED, State.RUNNING},
    State.BACKOFF: {State.STARTING, State.FATAL, State.STOPPED, State.RUNNING},
    State.FATAL: {State.STARTING, State.STOPPED, State.RUNNING},
}


class Program:
    """What the panel believes of one program (worker or Beat) between two looks at the table."""

    def __init__(self, kind):
        self.kind = kind
        self.state = State.STOPPED
        self.reason = ""
        self._lock = threading.Lock()

    def change_state(self, new, reason=""):
        """The one door: refuse transitions the model does not allow, log the rest."""
        with self._lock:
            if new == self.state:
                self.reason = reason or self.reason
                return
            if new not in ALLOWED[self.state]:
                raise IllegalTransition(f"{self.kind}: {self.state.value} -> {new.value}")
            log.info("%s: %s -> %s %s", self.kind, self.state.value, new.value, reason)
            self.state, self.reason = new, reason

    def observe(self, alive):
        """Bring a settled state in line with the process table; in-flight states are left alone."""
        if self.state in (State.STARTING, State.STOPPING):
            return self.state
        if alive and self.state != State.RUNNING:
            self.change_state(State.RUNNING, "found in the process table")
        elif not alive and self.state == State.RUNNING:
            self.change_state(State.EXITED, "no longer in the process table")
        return self.state
