"""The run log as a service: queries and truthful bulk updates shared by routes and tools."""
from sqlalchemy import update

from models import FAILED, RUNNING, ScheduledTask, TaskLog, db, utcnow


def fail_running(reason):
    """Every running run and running task becomes failed, finished now, with the reason."""
    now = utcnow()
    logs = db.session.execute(update(TaskLog).where(TaskLog.status == RUNNING).values(
        status=FAILED, state="FAILURE", finished_at=now, error=reason))
    tasks = db.session.execute(update(ScheduledTask).where(ScheduledTask.status == RUNNING)
                               .values(status=FAILED).execution_options(synchronize_session=False))
    db.session.commit()
    return tasks.rowcount, logs.rowcount
