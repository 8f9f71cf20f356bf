"""Cancelling runs so that they really stop, and saying whether they did."""
import logging
import time
from dataclasses import dataclass, field

from models import PENDING, RUNNING
from panel.broker import messages, remote
from panel.cluster import queues
from panel.errors import BrokerDown, NotCancellable
from panel.host import oscontrol
from panel.runlog import outcomes, runs

log = logging.getLogger("panel.cancel")
TERM_GRACE_S = 0.4     # a cooperative task ends on SIGTERM well within this
# A remote pool is watched through its worker's `stats`, which lists a dead child until the worker reaps it:
# at once when it sees the exit, at the latest at Celery's 5 s maintain_pool timer (concurrency/asynpool.py).
REMOTE_TERM_GRACE_S = 6.0
KILL_WAIT_S = 2.0      # after SIGKILL the process is gone at once; this bounds the check
POLL_S = 0.05
# A worker on a loaded machine serves its mailbox late: a revoke's one-second reply window proves nothing, so its
# revoked list is asked again until it shows the id, this long at most.
REVOKE_CONFIRM_S = 8.0
CONFIRM_ASK_S = 1.0
CONFIRM_POLL_S = 0.2


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


def take_waiting(celery, task_id, queue_names):
    """The queue a still-waiting message was taken out of (it can never run now), or None: a worker holds it, it
    is gone, or the broker cannot be searched by task id (AMQP)."""
    taken = messages.take_waiting(celery, task_id, queue_names)
    return taken.queue if isinstance(taken, messages.Envelope) else None


def confirm_revoked(celery, task_id, names, timeout_s=REVOKE_CONFIRM_S):
    """The workers whose revoked list shows task_id, asked again until one does or the time is up."""
    deadline = time.monotonic() + timeout_s
    while names:
        said = remote.ask(celery, sorted(names), "revoked", timeout_s=CONFIRM_ASK_S)
        holders = sorted(worker for worker, ids in said.items() if task_id in (ids or ()))
        if holders or time.monotonic() >= deadline:
            return holders
        time.sleep(CONFIRM_POLL_S)
    return []


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


def queue_names(celery):
    """Every queue a waiting message may be in: the settings', the workers', the broker's bindings, the default."""
    configured = celery.flask_app.config.get("WORKER_QUEUES", "") if hasattr(celery, "flask_app") else ""
    return sorted(queues.known(celery, configured) | {celery.conf.task_default_queue})


def take_out(celery, task_ids):
    """Queued runs still waiting in the broker are taken out, so no worker started later runs what the log ended
    (a broadcast revoke reaches only the workers running now); a broker that cannot be read leaves it to that."""
    try:
        taken = messages.take_all_waiting(celery, task_ids, queue_names(celery))
    except BrokerDown as exc:
        log.warning("queued runs not looked for in the broker (%s); revoked on the workers only", exc)
        return
    if taken != messages.NOT_READ:
        log.info("%d queued run(s) taken out of their queue: %s", len(taken), sorted(taken))


def cancel(celery, host, open_runs):
    """Mark the runs failed now (the database tells the truth at once), then stop them for real."""
    pending = [r.celery_task_id for r in open_runs if r.status == PENDING]
    running = [(r.celery_task_id, r.worker) for r in open_runs if r.status == RUNNING]
    outcomes.end(pending + [task_id for task_id, _ in running], outcomes.CANCELLED)  # commits: nothing is
    # held while we wait for workers
    outcome = Outcome()
    if pending:
        take_out(celery, pending)
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
