"""Cancelling runs so that they really stop, and saying whether they did."""
import logging
import time
from dataclasses import dataclass, field

from models import PENDING, RUNNING
from panel.broker import remote
from panel.errors import NotCancellable
from panel.host import oscontrol
from panel.runlog import outcomes, runs

log = logging.getLogger("panel.cancel")
TERM_GRACE_S = 0.4     # a cooperative task ends on SIGTERM well within this
# A remote pool is watched through its worker's `stats`, which lists a dead child until the worker reaps it:
# at once when it sees the exit, at the latest at Celery's 5 s maintain_pool timer (concurrency/asynpool.py).
REMOTE_TERM_GRACE_S = 6.0
KILL_WAIT_S = 2.0      # after SIGKILL the process is gone at once; this bounds the check
POLL_S = 0.05


@dataclass
class Outcome:
    revoked_queued: list = field(default_factory=list)
    stopped: list = field(default_factory=list)
    forced: list = field(default_factory=list)
    not_confirmed: list = field(default_factory=list)

    @property
    def confirmed_stopped(self):
        return not self.not_confirmed

    def as_dict(self):
        return {"confirmed_stopped": self.confirmed_stopped, "revoked_queued": self.revoked_queued,
                "stopped": self.stopped, "forced": self.forced, "not_confirmed": self.not_confirmed}


def _wait(alive, timeout_s):
    """Poll alive() until it turns false; True when it did within the time."""
    deadline = time.monotonic() + timeout_s
    while alive():
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)
    return True


def stop_execution(celery, host, task_id, worker, outcome):
    """SIGTERM through the worker; proof is the pool process gone; the host kills it after the grace if local.

    Celery drops a terminated request from `active` at once, whether or not its process died, so
    only the executing process itself tells the truth.
    """
    pid = remote.executing_pid(celery, worker, task_id)
    if pid is remote.NO_REPLY:
        remote.revoke(celery, [task_id], terminate=True)
        outcome.not_confirmed.append(task_id)
        return
    if pid is None:  # it had already ended: nothing runs it any more
        outcome.stopped.append(task_id)
        return
    child = host.pool_child(pid)
    revoke = lambda: remote.revoke(celery, [task_id], terminate=True, sig="SIGTERM", worker=worker)  # noqa: E731
    if child is not None:  # local: the process table says when it is gone, and it can be forced
        ended = oscontrol.terminate([child], TERM_GRACE_S, KILL_WAIT_S, send_term=revoke)
        if ended.forced:
            log.warning("run %s ignored SIGTERM for %ss; pool process %s was killed", task_id, TERM_GRACE_S, pid)
            outcome.forced.append(task_id)
        (outcome.not_confirmed if ended.left else outcome.stopped).append(task_id)
        return
    revoke()
    if _wait(lambda: pid in (remote.pool_pids(celery, worker, timeout_s=0.5) or {pid}), REMOTE_TERM_GRACE_S):
        outcome.stopped.append(task_id)
        return
    log.warning("run %s ignored SIGTERM for %ss on remote worker %s; not confirmed stopped", task_id,
                REMOTE_TERM_GRACE_S, worker)  # a remote worker's process cannot be forced from here
    outcome.not_confirmed.append(task_id)


def cancel(celery, host, open_runs):
    """Mark the runs failed now (the database tells the truth at once), then stop them for real."""
    pending = [r.celery_task_id for r in open_runs if r.status == PENDING]
    running = [(r.celery_task_id, r.worker) for r in open_runs if r.status == RUNNING]
    outcomes.end(pending + [task_id for task_id, _ in running], outcomes.CANCELLED)  # commits: nothing is
    # held while we wait for workers
    outcome = Outcome()
    if pending:
        remote.revoke(celery, pending)  # every worker: any of them may hold the queued message
        outcome.revoked_queued = pending
    for task_id, worker in running:
        if worker:
            stop_execution(celery, host, task_id, worker, outcome)
        else:
            remote.revoke(celery, [task_id], terminate=True)
            outcome.not_confirmed.append(task_id)
    log.info("cancelled %s: %s", pending + [t for t, _ in running], outcome.as_dict())
    return outcome


def cancel_schedule(celery, host, schedule):
    """Cancel every queued and running run of a schedule."""
    open_runs = runs.open_runs_of(schedule.id)
    if not open_runs:
        raise NotCancellable(f"Task {schedule.name} is not running: nothing to cancel")
    return cancel(celery, host, open_runs)


def cancel_run(celery, host, run):
    if run.status not in (PENDING, RUNNING):
        raise NotCancellable(f"Run {run.celery_task_id} has already ended ({run.status})")
    return cancel(celery, host, [run])
