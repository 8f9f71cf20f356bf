"""Operations on one Celery task by id, shared by the panel and the command-line tools (scripts/)."""
import logging
from dataclasses import dataclass, field

from models import PENDING, RUNNING, utcnow
from panel.broker import remote, results
from panel.cluster import queues, workers
from panel.runlog import cancel, outcomes, runs

log = logging.getLogger("panel.operations")
INSPECT_TIMEOUT_S = 1.0


@dataclass
class Where:
    """Where a task is on the cluster right now, from the workers' own answers."""
    active: list = field(default_factory=list)      # workers executing it
    reserved: list = field(default_factory=list)    # workers holding it, about to run
    scheduled: list = field(default_factory=list)   # (worker, eta): waiting for an ETA (a retry)
    workers: list = field(default_factory=list)     # workers that answered

    @property
    def anywhere(self):
        return bool(self.active or self.reserved or self.scheduled)

    def as_dict(self):
        return {"active": self.active, "reserved": self.reserved,
                "scheduled": [{"worker": w, "eta": eta} for w, eta in self.scheduled], "workers": self.workers}


def _workers(celery, timeout_s):
    """The workers that answer now: those the cluster monitor sees online asked by name, else a discovery ping."""
    return remote.answering(celery, _online(), timeout_s)


def _entries(replies, key=None):
    """(worker, entry) pairs of an inspect answer; `key` digs the request out of a scheduled entry."""
    for worker, entries in replies.items():
        for entry in entries or []:
            yield worker, (entry.get(key) or {}) if key else entry, entry


def locate(celery, task_id, timeout_s=INSPECT_TIMEOUT_S):
    """Where the task is now: executing, reserved, or waiting for its ETA, on which worker."""
    names = _workers(celery, timeout_s)
    where = Where(workers=names)
    for worker, request, _ in _entries(remote.ask(celery, names, "active", timeout_s=timeout_s)):
        if request.get("id") == task_id:
            where.active.append(worker)
    for worker, request, _ in _entries(remote.ask(celery, names, "reserved", timeout_s=timeout_s)):
        if request.get("id") == task_id:
            where.reserved.append(worker)
    for worker, request, entry in _entries(remote.ask(celery, names, "scheduled", timeout_s=timeout_s), "request"):
        if request.get("id") == task_id:
            where.scheduled.append((worker, entry.get("eta")))
    return where


def revoked_on(celery, names, timeout_s=INSPECT_TIMEOUT_S):
    """{worker: set of the task ids it holds revoked} (it discards those when they fall due)."""
    return {worker: set(ids or []) for worker, ids in remote.ask(celery, names, "revoked", timeout_s=timeout_s).items()}


def retrying_tasks(celery, timeout_s=INSPECT_TIMEOUT_S):
    """Every task waiting for an ETA on any worker and still meant to run, with retries from the run log."""
    names = _workers(celery, timeout_s)
    waiting = list(_entries(remote.ask(celery, names, "scheduled", timeout_s=timeout_s), "request"))
    revoked = revoked_on(celery, sorted({worker for worker, _, _ in waiting}), timeout_s)
    found = []
    for worker, request, entry in waiting:
        if request.get("id") in revoked.get(worker, ()):
            continue  # stopped: the worker discards it when it falls due
        row = runs.get(request.get("id"))
        if row is not None and row.status not in (PENDING, RUNNING):
            continue  # ended (revoked, cancelled) in the run log
        found.append({"id": request.get("id"), "name": request.get("name"), "worker": worker,
                      "next_attempt": entry.get("eta"), "retries": row.retries if row else None,
                      "last_error": row.error if row else None})
    runs.end_transaction()
    return sorted(found, key=lambda t: t["next_attempt"] or "")


def backend_state(celery, task_id):
    """The result backend's word on the task (PENDING also means 'unknown to the backend')."""
    return results.state(celery, task_id)


def record_of(task_id):
    row = runs.get(task_id)
    record = runs.as_dict(row) if row else None
    runs.end_transaction()
    return record


def status(celery, task_id):
    return {"task_id": task_id, "backend": backend_state(celery, task_id), "record": record_of(task_id)}


def info(celery, task_id):
    out = status(celery, task_id)
    out["where"] = locate(celery, task_id).as_dict()
    return out


def known(report):
    """Does anything know this task: the run log, the backend, or a worker?"""
    where = report.get("where") or {}
    return bool(report["record"] or report["backend"]["state"] != "PENDING"
                or where.get("active") or where.get("reserved") or where.get("scheduled"))


def retry_check(celery, task_id):
    """--check: is it in a retry loop, how many times so far, when is the next attempt; or how it stopped."""
    report = info(celery, task_id)
    record = report["record"] or {}
    scheduled = report["where"]["scheduled"]
    revoked = revoked_on(celery, sorted({entry["worker"] for entry in scheduled}))
    report["revoked_on"] = sorted(worker for worker, ids in revoked.items() if task_id in ids)
    still_meant = [entry for entry in scheduled if task_id not in revoked.get(entry["worker"], ())]
    open_run = record.get("status") in (PENDING, RUNNING)
    report["retrying"] = bool(still_meant and (not record or open_run)) or (
        open_run and record.get("state") == "RETRY" and not report["revoked_on"])
    report["retries"] = record.get("retries")
    report["next_attempt"] = (still_meant[0]["eta"] if still_meant else record.get("next_retry_at")) \
        if report["retrying"] else None
    report["stopped"] = None if report["retrying"] or not record or open_run else {
        "state": record.get("state"), "reason": record.get("error"), "at": record.get("finished_at")}
    return report


def revoke(celery, host, task_id, terminate=False, who="someone"):
    """Revoke for certain, and say how: a message still in its queue is taken out of it (no worker can ever get
    it); else the revoke goes through the workers and waits, bounded, for one to list it revoked. With terminate,
    a running execution is stopped and proven stopped.

    A run no worker executes ends in the log once that is certain; one still executing stays open until it ends,
    unless terminated; one no worker confirmed stays open (it may still run: nothing is guessed).
    """
    where = locate(celery, task_id)
    taken = None if where.anywhere else cancel.take_waiting(celery, task_id, cancel.queue_names(celery))
    if taken:
        remote.revoke(celery, [task_id])  # and any copy of it elsewhere is dropped when it arrives
        steps = [(f"message taken out of queue {taken} before any worker received it: it will never run", True),
                 _closed(outcomes.end([task_id], outcomes.revoked(who)).runs)]
        return _revoke_answer(celery, task_id, where, steps)
    online = sorted(set(where.workers) | set(_online()))
    acked = remote.revoke_everywhere(celery, [task_id], where.workers)
    confirmed = acked or cancel.confirm_revoked(celery, task_id, online)
    executing = where.active or [w for w in confirmed if task_id in (remote.active_ids(celery, w) or ())]
    steps = [_revoke_step(confirmed, online)]
    if executing and terminate:
        outcomes.end([task_id], outcomes.revoked(who))
        outcome = cancel.Outcome()
        for worker in executing:
            cancel.stop_execution(celery, host, task_id, worker, outcome)
        steps.append((f"running execution stopped on {', '.join(executing)}", outcome.confirmed_stopped))
    elif executing:
        steps.append((f"still executing on {', '.join(executing)} until it ends (use --terminate)", False))
    elif confirmed:  # it will not run: the workers that hold it, or get it, discard it
        steps.append(_closed(outcomes.end([task_id], outcomes.revoked(who)).runs))
    return _revoke_answer(celery, task_id, where, steps)


def _closed(runs_ended):
    return ("run marked revoked in the database" if runs_ended else "run record already closed (or none)", True)


def _revoke_answer(celery, task_id, where, steps):
    after = locate(celery, task_id)
    return {"task_id": task_id, "before": where.as_dict(), "after": after.as_dict(),
            "steps": [{"step": s, "ok": ok} for s, ok in steps], "ok": all(ok for _, ok in steps)}


def _online():
    """The workers the cluster monitor sees online (a busy one may miss a ping's window, not its heartbeats)."""
    now = utcnow()
    return [row.name for row in workers.rows() if workers.is_online(row, now)]


def _revoke_step(confirmed, online=()):
    """The first step of a revoke: the workers that list it revoked, or why none does."""
    if confirmed:
        return (f"revoke received by {', '.join(confirmed)}: in their revoked list (kept across a restart in a "
                "--statedb), so they discard the message", True)
    if online:
        return (f"revoke sent to {', '.join(online)}, but none listed it as revoked within "
                f"{cancel.REVOKE_CONFIRM_S:g} s: not confirmed, so the run stays open until a worker discards or "
                "runs it; revoke again", False)
    return ("no worker answered, and the message could not be taken out of a queue (none holds it, or the broker "
            "cannot be searched by id): a revoke reaches only running workers; start a worker and revoke again, "
            "or purge the queue", False)


def cleanup(celery, task_id):
    """Forget the result in the backend and close the record, so nothing shows it pending for ever."""
    forgotten = results.forget(celery, task_id)
    closed = outcomes.end([task_id], outcomes.CLEANED_UP).runs
    remote.revoke(celery, [task_id])
    return {"task_id": task_id, "steps": [
        {"step": "result forgotten in the backend" if forgotten else
         "result left in the backend (it keeps none, or the panel reads it read only)", "ok": True},
        {"step": "record closed in the database" if closed else "record already closed (or none)", "ok": True},
        {"step": "revoked so a queued copy never runs", "ok": True}], "ok": True}


def stop_retries(celery, host, task_id, who="someone"):
    """Stop a retry loop for good by every means that works, then check again."""
    before = locate(celery, task_id)
    online = sorted(set(before.workers) | set(_online()))
    acked = remote.revoke_everywhere(celery, [task_id], before.workers) or \
        cancel.confirm_revoked(celery, task_id, online)
    steps = [_revoke_step(acked, online)]
    if before.active:
        outcome = cancel.Outcome()
        for worker in before.active:
            cancel.stop_execution(celery, host, task_id, worker, outcome)
        steps.append((f"running attempt terminated on {', '.join(before.active)}", outcome.confirmed_stopped))
    if acked:  # otherwise its next attempt may still run: the row stays as it is
        closed = outcomes.end([task_id], outcomes.retries_stopped(who)).runs
        steps.append(("run marked failed in the database" if closed else "run record already closed (or none)",
                      True))
    after = locate(celery, task_id)
    steps.append(("no attempt executing anywhere", not after.active))
    if after.scheduled:
        steps.append((f"{len(after.scheduled)} pending retry entr(y/ies) left in worker timers; "
                      "revoked, so they are discarded when due", True))
    else:
        steps.append(("no pending retry left on any worker", True))
    record = record_of(task_id)
    return {"task_id": task_id, "before": before.as_dict(), "after": after.as_dict(), "record": record,
            "steps": [{"step": s, "ok": ok} for s, ok in steps], "ok": all(ok for _, ok in steps)}


def purge_queue(celery, broker_url, name, configured=""):
    """Empty one known queue and end the runs its messages carried (they will not run: the log says so)."""
    removed, task_ids = queues.purge(celery, broker_url, name, configured)
    outcomes.end(task_ids, outcomes.purged(name))
    return removed
