"""Schedules: what Beat sends, read from the database; parsing them, and the edits every caller shares."""
from datetime import timedelta, timezone

from celery.schedules import ParseException, crontab as celery_crontab, schedule as celery_interval
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from models import Schedule, db, iso, utcnow
from panel.beat import due, housekeeping
from panel.errors import NameTaken, NotFound, ValidationError
from panel.runlog import recorder

CRON_FIELDS = 5
NAME_MAX = 200
ID_MAX = 2**31 - 1                    # larger ids cannot exist, and would overflow the database's integer
INTERVAL_MAX_S = 10 * 365 * 24 * 3600  # ten years


def parse_crontab(expr, app=None):
    """A Celery crontab from a five-field expression; ValidationError when it does not parse."""
    parts = (expr or "").split()
    if len(parts) != CRON_FIELDS:
        raise ValidationError("crontab",
                              f"needs {CRON_FIELDS} fields (minute hour day month weekday), got {len(parts)}")
    minute, hour, day, month, weekday = parts
    try:
        return celery_crontab(minute=minute, hour=hour, day_of_month=day, month_of_year=month,
                              day_of_week=weekday, app=app)
    except (ParseException, ValueError, KeyError, IndexError, ZeroDivisionError) as exc:  # Celery's parser raises each
        raise ValidationError("crontab", f"does not parse: {exc}") from exc


def schedule_of(task, app=None):
    """The Celery schedule object for a row; ValidationError for a row with no valid schedule."""
    if task.crontab:
        return parse_crontab(task.crontab, app)
    if task.interval_seconds and task.interval_seconds > 0:
        return celery_interval(timedelta(seconds=task.interval_seconds), app=app)
    raise ValidationError("interval_seconds", "a schedule needs an interval above zero or a crontab")


def _check_task_type(fields, registered):
    if "task" in fields and (fields["task"] not in registered or fields["task"].startswith("celery.")):
        raise ValidationError("task", f"{fields['task']!r} is not a registered Celery task")


def create(fields, registered):
    """Save a new schedule (fields checked by the request's model); the change marker moves with it."""
    _check_task_type(fields, registered)
    task = Schedule(**fields)
    db.session.add(task)
    _commit_unique(fields.get("name"))
    return task


def edit(task_id, fields, registered):
    """Apply the given fields; nothing is saved when any is refused."""
    task = get(task_id)
    _check_task_type(fields, registered)
    for key, value in fields.items():
        setattr(task, key, value)
    if fields.get("enabled"):
        task.disabled_reason = None
    _commit_unique(fields.get("name"))
    return task


def delete(task_id):
    """Delete a task; returns its name for the caller's message."""
    task = get(task_id)
    name = task.name
    db.session.delete(task)
    db.session.commit()
    return name


def set_enabled(task_id, enabled):
    task = get(task_id)
    task.enabled = enabled
    if enabled:
        task.disabled_reason = None
    db.session.commit()
    return task


def set_all_enabled(enabled):
    """Enable or disable every task in one statement; returns how many changed."""
    values = {"enabled": enabled, "anchored_at": utcnow()}  # a schedule enabled again owes nothing from before
    if enabled:
        values["disabled_reason"] = None
    result = db.session.execute(
        update(Schedule).where(Schedule.enabled.is_not(enabled)).values(**values))
    db.session.commit()
    return result.rowcount


def get(task_id):
    task = db.session.get(Schedule, task_id) if 0 < task_id <= ID_MAX else None
    if task is None:
        raise NotFound(f"scheduled task {task_id} does not exist")
    return task


def all_schedules():
    return db.session.scalars(select(Schedule).order_by(Schedule.name)).all()


def _commit_unique(name):
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise NameTaken("name", f"a task named {name!r} already exists") from exc


def next_run(task, now=None):
    """When the schedule next falls due, from the schedule itself (as Beat computes it), not Beat's last word.

    Beat writes next_run_at only while it runs: after an edit while Beat is down the stored value is stale."""
    if not task.enabled:
        return task.next_run_at
    try:
        anchor = (task.anchored_at or task.last_run_at or task.created_at or utcnow()).replace(tzinfo=timezone.utc)
        now = (now or utcnow()).replace(tzinfo=timezone.utc)
        return due.next_after(schedule_of(task), anchor, now).astimezone(timezone.utc).replace(tzinfo=None)
    except (ValidationError, ValueError, OverflowError):  # a row Beat will disable: keep what it said
        return task.next_run_at


def as_dict(task):
    out = {"id": task.id, "name": task.name, "task": task.task, "args": task.args or [], "kwargs": task.kwargs or {},
           "enabled": task.enabled, "catch_up": task.catch_up or "once", "status": task.status,
           "last_run_at": iso(task.last_run_at), "next_run_at": iso(next_run(task)), "run_count": task.run_count,
           "disabled_reason": task.disabled_reason}
    if task.crontab:
        out["crontab"] = task.crontab
    else:
        out["interval_seconds"] = task.interval_seconds
    return out


def _send(celery, task_id, celery_name, args, kwargs):
    return housekeeping.send(celery, celery_name, list(args or []), dict(kwargs or {}),
                             {recorder.SCHEDULE_HEADER: task_id}).id


def run_now(task, celery):
    """Send one run of a scheduled task now; its row and counters follow through the publish signal."""
    fields = (task.id, task.task, task.args, task.kwargs)
    db.session.rollback()  # no transaction held while talking to the broker
    return _send(celery, *fields)


def run_all(celery):
    """Send every enabled task now; returns (name, celery id) pairs."""
    rows = db.session.execute(select(Schedule.id, Schedule.name, Schedule.task, Schedule.args,
                                     Schedule.kwargs).where(Schedule.enabled.is_(True))
                              .order_by(Schedule.name)).all()
    db.session.rollback()
    return [(name, _send(celery, task_id, celery_name, args, kwargs))
            for task_id, name, celery_name, args, kwargs in rows]
