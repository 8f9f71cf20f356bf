"""Operations on one Celery task by id, shared by the panel and the command-line tools (seed 004)."""
import logging
from dataclasses import dataclass, field

from models import PENDING, RUNNING, utcnow
from panel.broker import remote, results
from panel.cluster import workers
from panel.runlog import cancel, runs

log = logging.getLogger("panel.operations")
INSPECT_TIMEOUT_S = 1.0
STOP_RETRIES_REASON = "Retry loop stopped manually"
CLEANUP_REASON = "Cleaned up manually: the task will not run"


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
    now = utcnow()
    known = [row.name for row in workers.rows() if workers.is_online(row, now)]
    return remote.answering(celery, known, timeout_s)


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


def retrying_tasks(celery, timeout_s=INSPECT_TIMEOUT_S):
    """Every task waiting for an ETA on any worker, with retries from the run log where we have it."""
    names = _workers(celery, timeout_s)
    found = []
    for worker, request, entry in _entries(remote.ask(celery, names, "scheduled", timeout_s=timeout_s), "request"):
        row = runs.get(request.get("id"))
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
    """--check: is it in a retry loop, how many times so far, when is the next attempt."""
    report = info(celery, task_id)
    record = report["record"] or {}
    scheduled = report["where"]["scheduled"]
    report["retrying"] = bool(scheduled) or (record.get("state") == "RETRY" and record.get("status") == PENDING)
    report["retries"] = record.get("retries")
    report["next_attempt"] = scheduled[0]["eta"] if scheduled else record.get("next_retry_at")
    return report


def revoke(celery, instance, task_id, terminate=False):
    """Revoke on every worker; with terminate, stop a running execution and prove it stopped."""
    where = locate(celery, task_id)
    remote.revoke(celery, [task_id])
    steps = [("revoke sent to every worker (kept in their persistent revoke state)", True)]
    if where.active and terminate:
        outcome = cancel.Outcome()
        for worker in where.active:
            cancel.stop_execution(celery, instance, task_id, worker, outcome)
        steps.append((f"running execution stopped on {', '.join(where.active)}", outcome.confirmed_stopped))
    elif where.active:
        steps.append((f"still executing on {', '.join(where.active)} until it ends (use --terminate)", False))
    after = locate(celery, task_id)
    return {"task_id": task_id, "before": where.as_dict(), "after": after.as_dict(),
            "steps": [{"step": s, "ok": ok} for s, ok in steps], "ok": all(ok for _, ok in steps)}


def _close_record(task_id, reason, state):
    row = runs.get(task_id)
    if row is None or row.status not in (PENDING, RUNNING):
        runs.end_transaction()
        return False
    runs.mark_failed([task_id], reason, state=state)
    return True


def cleanup(celery, task_id):
    """Forget the result in the backend and close the record, so nothing shows it pending for ever."""
    results.forget(celery, task_id)
    closed = _close_record(task_id, CLEANUP_REASON, "REVOKED")
    remote.revoke(celery, [task_id])
    return {"task_id": task_id, "steps": [
        {"step": "result forgotten in the backend", "ok": True},
        {"step": "record closed in the database" if closed else "record already closed (or none)", "ok": True},
        {"step": "revoked so a queued copy never runs", "ok": True}], "ok": True}


def stop_retries(celery, instance, task_id):
    """Stop a retry loop for good by every means that works, then check again."""
    before = locate(celery, task_id)
    steps = []
    remote.revoke(celery, [task_id])
    steps.append(("revoked on every worker; workers keep it in their statedb, so it survives a restart", True))
    if before.active:
        outcome = cancel.Outcome()
        for worker in before.active:
            cancel.stop_execution(celery, instance, task_id, worker, outcome)
        steps.append((f"running attempt terminated on {', '.join(before.active)}", outcome.confirmed_stopped))
    closed = _close_record(task_id, STOP_RETRIES_REASON, "REVOKED")
    steps.append(("run marked failed in the database" if closed else "run record already closed (or none)", True))
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
