"""The domain's errors, in one place: each says what went wrong and carries the HTTP status it answers."""


class PanelError(Exception):
    """A failure the panel expects and explains; the web layer answers it with `status`."""

    status = 500


class ValidationError(PanelError, ValueError):
    """Bad input; `field` names what failed so callers can point at it."""

    status = 400

    def __init__(self, field, message):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


class NameTaken(ValidationError):
    """A name that must be unique is in use: a conflict with what exists, not a malformed request."""

    status = 409


class NotFound(PanelError, LookupError):
    """No such schedule, run, worker, queue or task type."""

    status = 404


class ConflictError(PanelError, RuntimeError):
    """What was asked cannot be done in the present state (nothing configured for it, say)."""

    status = 409


class ControlBusy(PanelError, RuntimeError):
    """Another start, stop or restart holds the control lock for longer than we wait."""

    status = 409


class NotCancellable(PanelError, RuntimeError):
    """Nothing of this schedule or run is queued or running."""

    status = 409


class NoWorkerOnline(PanelError, RuntimeError):
    """Nobody to apply a per-task-type limit to."""

    status = 409


class BrokerDown(PanelError, RuntimeError):
    """The broker did not answer."""

    status = 503


class ResultsNotKept(ConflictError):
    """The project's result backend keeps no results (rpc://), or the panel was not told where they are."""


class DatabaseDown(PanelError, RuntimeError):
    """The database did not answer."""

    status = 503


class UserError(PanelError, ValueError):
    """A user or token command that cannot be done (unknown user, short password, bad role)."""

    status = 400


class LoginRequired(PanelError):
    """A request that needs a session or an API token came without one."""

    status = 401


class Forbidden(PanelError):
    """The caller's role may not do this."""

    status = 403


class HostRefused(PanelError):
    """With login off, a request named a host this panel does not answer to (DNS rebinding)."""

    status = 400


class SettingsError(PanelError, ValueError):
    """A setting (environment or `.env`) that does not fit its type: the start stops, naming each key and what it
    wants, e.g. "PANEL_PORT: expected an integer, got 'abc'"."""

    def __init__(self, problems):
        self.problems = list(problems)  # (key, what is wrong) pairs
        super().__init__("\n".join(f"{key}: {message}" for key, message in self.problems))


class SupervisorUnreachable(PanelError, ConnectionError):
    """A host's supervisord did not answer (or not as supervisord): the reason says why."""

    status = 503


class SupervisorSilent(SupervisorUnreachable):
    """A host's supervisord let the call wait out its timeout (a stopped host, a firewall that drops): not waited
    for again until it answers."""


class SupervisorRefused(SupervisorUnreachable):
    """A host's supervisord answered 401: the panel's credentials for it are wrong (its settings, not the caller's
    login), so 502 like a gateway whose upstream refused it."""

    status = 502


class SupervisorFault(ConflictError):
    """Supervisor refused the action (ALREADY_STARTED, NOT_RUNNING, SPAWN_ERROR...); `fault` is its name."""

    def __init__(self, message, fault):
        super().__init__(message)
        self.fault = fault


class NoSuchProgram(NotFound):
    """The host's supervisord has no program of that name (BAD_NAME)."""


class IllegalTransition(RuntimeError):
    """A process state change the state model does not allow: a bug, never the user's input (so no status)."""
