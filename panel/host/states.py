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
    # STOPPED from STARTING or RUNNING: the watchdog sees a stop through the panel after the fact.
    State.STARTING: {State.RUNNING, State.BACKOFF, State.FATAL, State.EXITED, State.STOPPING, State.STOPPED},
    State.RUNNING: {State.STOPPING, State.EXITED, State.STOPPED},
    State.STOPPING: {State.STOPPED, State.RUNNING},  # RUNNING: the OS refused the stop's signal
    State.EXITED: {State.STARTING, State.STOPPED, State.RUNNING, State.BACKOFF, State.FATAL},
    State.BACKOFF: {State.STARTING, State.FATAL, State.STOPPED, State.RUNNING},
    State.FATAL: {State.STARTING, State.STOPPED, State.RUNNING},
}


def change(holder, new, reason="", kind=None):
    """The one door for every program state change, in memory or in the watchdog's row: legal moves only.

    `holder` has `state` (a State or its name) and `reason`; returns True when the state moved.
    """
    old = State(holder.state)
    if new == old:
        holder.reason = reason or holder.reason
        return False
    if new not in ALLOWED[old]:
        raise IllegalTransition(f"{kind or getattr(holder, 'kind', '?')}: {old.value} -> {new.value}")
    log.info("%s: %s -> %s %s", kind or getattr(holder, "kind", "?"), old.value, new.value, reason)
    holder.state = new if isinstance(holder.state, State) else new.value  # rows keep the name
    holder.reason = reason
    return True


class Program:
    """What the panel believes of one program (worker or Beat) between two looks at the table."""

    def __init__(self, kind):
        self.kind = kind
        self.state = State.STOPPED
        self.reason = ""
        self._lock = threading.Lock()

    def change_state(self, new, reason=""):
        """Through the one door, one change at a time."""
        with self._lock:
            change(self, new, reason)

    def observe(self, alive):
        """Bring a settled state in line with the process table; in-flight states are left alone."""
        if self.state in (State.STARTING, State.STOPPING):
            return self.state
        if alive and self.state != State.RUNNING:
            self.change_state(State.RUNNING, "found in the process table")
        elif not alive and self.state == State.RUNNING:
            self.change_state(State.EXITED, "no longer in the process table")
        return self.state


def mirror(holder, name, reason=""):
    """The door for a state another supervisor decides (Supervisor's own): taken as it says it, never judged."""
    if holder.state == name:
        holder.reason = reason or holder.reason
        return False
    where = f" on {holder.host}" if getattr(holder, "host", None) else ""
    log.info("%s%s: %s -> %s (%s)", getattr(holder, "program", "?"), where, holder.state, name, reason)
    holder.state, holder.reason = name, reason
    return True
