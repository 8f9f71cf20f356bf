"""Stop Celery as the toolbar means it (seeds 000 and 001): the processes first, then the run log tells the truth."""
import logging
from dataclasses import dataclass, field

from panel.host.processes import BEAT, WORKER
from panel.runlog import runs

log = logging.getLogger("panel.control")
STOPPED_REASON = "Celery was stopped from the panel while this task was running"


@dataclass
class StopReport:
    """What a stop did: processes ended per kind, any still alive, runs marked failed, and its words."""

    killed: dict
    survivors: list = field(default_factory=list)
    failed_schedules: int = 0
    failed_runs: int = 0
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
        if self.survivors:
            text += f"; processes still alive: {self.survivors}"
        return text


def stop_celery(supervisor, actor=None):
    """TERM, grace, KILL the worker and Beat; then their running runs and schedules become failed."""
    killed, survivors = supervisor.stop(actor=actor)
    report = StopReport(killed, survivors)
    try:
        report.failed_schedules, report.failed_runs = runs.fail_running(STOPPED_REASON)
    except Exception as exc:  # the processes are stopped whatever the database says
        log.exception("stop-celery: database update failed")
        report.database_error = str(exc)
    log.info("stop-celery: %s", report.message)
    return report
