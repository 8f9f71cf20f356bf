"""The recorder's writes as Core statements with named parameters, one set per database dialect."""
from sqlalchemy import DateTime, bindparam, case, insert, select, update

from models import COMPLETED, FAILED, PENDING, Run, Schedule
from panel.runlog import ending, runtime

logs_t = Run.__table__
tasks_t = Schedule.__table__
# Columns a run change written before they existed (kept in the spool across an upgrade) does not carry.
OPTIONAL = ("eta", "retry_of")
ENDED = ("finished_at", "runtime_s", "result", "error")


def _by_task_id():
    return logs_t.c.celery_task_id == bindparam("tid")


def _run_change(change, **values):
    """One run's row moved by a change of the worker's, within the rule that the first ending stays."""
    return ending.guard(update(logs_t).where(_by_task_id()), change, logs_t.c.status).values(**values)


def _binds(columns):
    return {c: bindparam(c, value=None, required=False) if c in OPTIONAL else bindparam(c) for c in columns}


def _upsert_run(dialect_name, columns, on_conflict):
    """Insert a run; when its row is there already, set only the `on_conflict` columns from this insert."""
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif dialect_name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:
        return insert(logs_t).values(_binds(columns))
    stmt = dialect_insert(logs_t).values(_binds(columns))
    changes = {c: stmt.excluded[c] for c in on_conflict}
    # The sender notes its time after the message left, so a worker may have started the run a moment
    # earlier; whichever of the two writes lands second, a run is never queued after it started.
    if "queued_at" in changes:
        changes["queued_at"] = case((logs_t.c.started_at < stmt.excluded.queued_at, logs_t.c.started_at),
                                    else_=stmt.excluded.queued_at)
    if "started_at" in changes:
        changes["queued_at"] = case((logs_t.c.queued_at > stmt.excluded.started_at, stmt.excluded.started_at),
                                    else_=logs_t.c.queued_at)
    return stmt.on_conflict_do_update(index_elements=[logs_t.c.celery_task_id], set_=changes)


def for_dialect(dialect_name):
    """Every write the recorder makes, as Core statements with named parameters."""
    run_columns = ("celery_task_id", "task_name", "scheduled_task_id", "status", "state", "args", "kwargs",
                   "queued_at", "started_at", "worker", "retries", "next_retry_at", "eta", "retry_of")
    ran = runtime.seconds(logs_t.c.started_at, bindparam("now", type_=DateTime), dialect_name)
    schedule_of_run = select(logs_t.c.scheduled_task_id).where(_by_task_id()).scalar_subquery()
    return {
        # The worker's start may get there first: the sender's insert then adds what only it knows.
        "insert": _upsert_run(dialect_name, run_columns, ("scheduled_task_id", "queued_at", "eta", "retry_of")),
        # A retry of a run the panel already ended (cancelled, stopped) does not open it again: the revoke
        # discards the retry when it falls due. If it runs after all, "started" opens the row (the truth).
        "retry_sent": _run_change("retry_sent", status=PENDING, state="RETRY", retries=bindparam("retries"),
                                  next_retry_at=bindparam("eta")),
        "schedule_sent": update(tasks_t).where(tasks_t.c.id == bindparam("sid")).values(
            last_run_at=bindparam("now"), run_count=tasks_t.c.run_count + 1, status=PENDING),
        # One statement whether or not a sender recorded the run, so a start needs no answer back.
        "started": _upsert_run(dialect_name, run_columns,
                               ("status", "state", "started_at", "worker", "next_retry_at")),
        # "started" and "succeeded" of a short run in one write (merged, below): the run inserted or moved ended.
        "ran": _upsert_run(dialect_name, run_columns + ENDED, ("status", "state", "started_at", "worker",
                                                                "next_retry_at") + ENDED),
        "succeeded": _run_change("succeeded", status=COMPLETED, state="SUCCESS", finished_at=bindparam("now"),
                                 runtime_s=ran, result=bindparam("result"), error=None),
        # A failure after a cancel (the killed process) must not overwrite "Task cancelled manually".
        "failed": _run_change("failed", status=FAILED, state="FAILURE", finished_at=bindparam("now"), runtime_s=ran,
                              error=bindparam("error"), traceback=bindparam("tb")),
        "retrying": _run_change("retrying", status=PENDING, state="RETRY", retries=bindparam("retries"),
                                error=bindparam("error")),
        "revoked": _run_change("revoked", status=FAILED, state="REVOKED", finished_at=bindparam("now"),
                               runtime_s=ran, error=bindparam("error")),
        "schedule_status": update(tasks_t).where(tasks_t.c.id == schedule_of_run).values(status=bindparam("st")),
    }


def merged(changes):
    """A run's start and its success queued side by side (a short task) become one write of the ended run: one
    statement and one index update instead of two. Both move a run whatever its state, so one is the two in turn."""
    out = []
    for steps in changes:
        before = out[-1][0] if out else (None, None)
        if before[0] == "started" and steps[0][0] == "succeeded" and steps[0][1]["tid"] == before[1]["celery_task_id"]:
            started, ended = before[1], steps[0][1]
            ran = dict(started, status=COMPLETED, state="SUCCESS", finished_at=ended["now"], result=ended["result"],
                       runtime_s=runtime.between(started["started_at"], ended["now"]), error=None)
            out[-1] = (("ran", ran), *out[-1][1:], *steps[1:])
        else:
            out.append(steps)
    return out
