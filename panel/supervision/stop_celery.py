"""Stop Celery as the toolbar's Stop Celery means it, and the run log tells the truth after it.

Only this host's worker is stopped, so only its runs end: runs on other hosts' workers go on (the
reconciler asks those workers). Its runs waiting for a retry are revoked on it before it stops, so the
revoke is in its --statedb and the retry is discarded if its message comes back; they end "revoked". Its
running runs end "failed" with the stop's reason, unless they finished within the grace. All of it under
the control lock, so the reconciler never takes a stop for a lost worker.
"""
import logging
from dataclasses import dataclass, field

from panel.broker import remote
from panel.host import progress
from panel.host.processes import BEAT, WORKER
from panel.runlog import outcomes, runs

log = logging.getLogger("panel.control")
STOPPED_REASON = outcomes.STOPPED.reason
REVOKE_TIMEOUT_S = 2.0


@dataclass
class StopReport:
    """What a stop did: processes ended per kind, any still alive, runs ended, and its words."""

    killed: dict
    survivors: list = field(default_factory=list)
    failed_schedules: int = 0
    failed_runs: int = 0
    revoked_retries: int = 0
    database_error: str = ""

    @property
    def ok(self):
        return not self.survivors and not self.database_error

    @property
    def message(self):
        text = f"Stopped {self.killed[WORKER]} worker(s) and {self.killed[BEAT]} beat process(es)"
        if self.database_error:
            return text + f"; the database update failed: {self.database_error}"
        text += f"; marked {self.failed_schedules} running task(s) and {self.failed_runs} running log(s) as failed"
        if self.revoked_retries:
            text += f"; {self.revoked_retries} run(s) waiting for a retry revoked"
        if self.survivors:
            text += "; processes still alive: PID " + ", ".join(map(str, self.survivors))
        return text


def stop_celery(supervisor, celery, actor=None):
    """Revoke the local worker's waiting retries, stop the worker and Beat, then end the runs it held."""
    with supervisor.control_lock():
        try:
            running, waiting = runs.held_by(supervisor.nodename)
        except Exception:  # the processes are stopped whatever the database says
            log.exception("stop-celery: cannot read the runs the worker holds")
            running, waiting = None, []
        if waiting:  # while the worker lives, so that it keeps the revoke
            remote.revoke(celery, waiting, worker=supervisor.nodename, timeout_s=REVOKE_TIMEOUT_S)
            remote.revoke(celery, waiting)  # and any other worker that may get the message
        with progress.doing(supervisor.instance, "stopping", supervisor.grace_s,
                            None if running is None else len(running)):
            report = StopReport(*supervisor.stop(actor=actor))
        try:
            if running is None:
                running, waiting = runs.held_by(supervisor.nodename)
            report.failed_runs, report.failed_schedules = outcomes.end(running, outcomes.STOPPED)
            report.revoked_retries = outcomes.end(waiting, outcomes.STOPPED_WAITING).runs
        except Exception as exc:
            log.exception("stop-celery: database update failed")
            report.database_error = str(exc)
    log.info("stop-celery: %s", report.message)
    return report
