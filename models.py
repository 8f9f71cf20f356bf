"""Every database table: schedules and their runs, Beat's claims and change marker, process history, watchdogs,
alerts, workers, paused queues, quarantined messages, users, sessions, tokens, audit."""
from datetime import datetime, timezone

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, event
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)

# Task statuses as the dashboard's task badges show them; Celery states stay in Run.state.
PENDING, RUNNING, COMPLETED, FAILED = "pending", "running", "completed", "failed"
# A run that certainly ended while nobody could see how (its worker lives, the project stores no result): its
# outcome is unknown, never guessed as failed and never left open.
UNKNOWN = "unknown"
TASK_STATUSES = (PENDING, RUNNING, COMPLETED, FAILED, UNKNOWN)


def utcnow():
    """Naive UTC: the one time form stored in every database we support."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def iso(value, timespec="auto"):
    """A stored time as it leaves the panel: ISO 8601 in UTC with Z, None for none.

    A naive value is UTC already (see utcnow); an aware one is converted to UTC first. `timespec` is
    datetime.isoformat's: the default keeps microseconds when there are any, "seconds" or "minutes" shorten the
    time for a person's reading (the CLI's lists, the audit page)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.isoformat(timespec=timespec) + "Z"


class Schedule(db.Model):
    """What Beat sends: a task type with its arguments, on an interval or a crontab (the panel's "scheduled task")."""

    __tablename__ = "scheduled_tasks"
    # Columns whose change alters what Beat sends; the rest is run bookkeeping.
    SCHEDULE_FIELDS = ("name", "task", "args", "kwargs", "interval_seconds", "crontab", "enabled", "catch_up")
    # Columns whose change starts the schedule's clock afresh (anchored_at): no run is owed from before.
    TIMING_FIELDS = ("interval_seconds", "crontab", "enabled")
    CATCH_UP = ("skip", "once", "all")

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    task: Mapped[str] = mapped_column(String(200))
    args: Mapped[list] = mapped_column(JSON, default=list)
    kwargs: Mapped[dict] = mapped_column(JSON, default=dict)
    interval_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    crontab: Mapped[str | None] = mapped_column(String(120), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(20), default=PENDING)
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    next_run_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    run_count: Mapped[int] = mapped_column(Integer, default=0)
    disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Runs that fell due while no Beat ran: skip them, send one for all (Celery's way), or send each.
    catch_up: Mapped[str] = mapped_column(String(4), default="once", server_default="once")
    anchored_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)  # where its due times start
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    runs = relationship("Run", back_populates="schedule", passive_deletes=True)


class BeatClaim(db.Model):
    """One due run of a schedule, claimed before it is sent: unique on (schedule, due time), so however many
    Beats run, the one whose insert lands sends it and the others do not (GoodJob's cron design)."""

    __tablename__ = "beat_claims"
    __table_args__ = (sa.UniqueConstraint("schedule_id", "due_at", name="uq_beat_claims_schedule_due"),
                      Index("ix_beat_claims_sent", "sent_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("scheduled_tasks.id", ondelete="CASCADE"))
    due_at: Mapped[datetime] = mapped_column(DateTime)
    outcome: Mapped[str] = mapped_column(String(10), default="claimed")  # claimed, sent, skipped
    claimed_by: Mapped[str] = mapped_column(String(200))
    claimed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    celery_task_id: Mapped[str | None] = mapped_column(String(255), nullable=True)


class Run(db.Model):
    """One execution of a task type, from the moment it is sent until it ends (a row of the "task log")."""

    __tablename__ = "task_logs"
    # Keyset pages walk (queued_at, id) newest first, alone or after one equality filter.
    __table_args__ = (
        Index("ix_task_logs_queued", "queued_at", "id"),
        Index("ix_task_logs_state_queued", "state", "queued_at", "id"),
        Index("ix_task_logs_task_queued", "task_name", "queued_at", "id"),
        Index("ix_task_logs_worker_queued", "worker", "queued_at", "id"),
        Index("ix_task_logs_finished", "finished_at"),
        Index("ix_task_logs_runtime", "runtime_s", "id"),  # slowest first, keyset-paged
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    scheduled_task_id: Mapped[int | None] = mapped_column(
        ForeignKey("scheduled_tasks.id", ondelete="SET NULL"), nullable=True, index=True)
    celery_task_id: Mapped[str] = mapped_column(String(64), unique=True)
    # None: nobody recorded it (a run read back from a result backend that keeps no extended result), never a
    # made-up name that task filters and per-task counts would take for a real task
    task_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default=PENDING, index=True)
    state: Mapped[str] = mapped_column(String(20), default="PENDING")
    args: Mapped[list | None] = mapped_column(JSON, nullable=True)
    kwargs: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    queued_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    result: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    traceback: Mapped[str | None] = mapped_column(Text, nullable=True)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    next_retry_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    eta: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)  # sent to start no sooner than this
    runtime_s: Mapped[float | None] = mapped_column(Float, nullable=True)  # finished - started, kept to sort by
    retry_of: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)  # the run it sent again

    schedule = relationship("Schedule", back_populates="runs")


class RunTally(db.Model):
    """The run log's figures kept as runs are written (runs by state, the duration histogram): the database's own
    triggers append a signed change per row written, the background folds them; a figure is the sum of its rows."""

    __tablename__ = "run_tallies"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    family: Mapped[str] = mapped_column(String(20))  # "state" or "duration"
    label: Mapped[str] = mapped_column(String(20))  # the state, or the bucket's upper bound in seconds ("+Inf")
    n: Mapped[int] = mapped_column(BigInteger)  # runs added (+) or taken away (-)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)  # their durations' sum (duration family only)


class ScheduleChange(db.Model):
    """The change marker Beat polls: one row, bumped with every schedule edit."""

    __tablename__ = "schedule_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    changed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ProcessEvent(db.Model):
    """The restart history: every start, stop, restart, crash and watchdog action on the worker and Beat."""

    __tablename__ = "process_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    program: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(20))  # start, stop, restart, crash, backoff, fatal
    outcome: Mapped[str] = mapped_column(String(20))
    pids: Mapped[list] = mapped_column(JSON, default=list)
    message: Mapped[str] = mapped_column(Text, default="")
    cause: Mapped[str] = mapped_column(String(40), default="", server_default="")  # request, watchdog, crash...
    actor: Mapped[str] = mapped_column(String(80), default="", server_default="")  # who: a user, "watchdog", "cli"
    exit_status: Mapped[int | None] = mapped_column(Integer, nullable=True)  # negative: killed by that signal
    host: Mapped[str | None] = mapped_column(String(120), nullable=True)  # a host of the pane; null: the panel's own


class FollowedProgram(db.Model):
    """A worker or Beat under another host's Supervisor as the panel last saw it (the hosts pane), so that a PID that
    changed unasked is recorded as a crash, across a panel restart too; `desired` follows the actions through the
    panel ("restarting" while one is under way)."""

    __tablename__ = "followed_programs"

    host: Mapped[str] = mapped_column(String(120), primary_key=True)
    program: Mapped[str] = mapped_column(String(20), primary_key=True)
    state: Mapped[str] = mapped_column(String(20), default="UNKNOWN")
    pids: Mapped[list] = mapped_column(JSON, default=list)
    desired: Mapped[str] = mapped_column(String(10), default="running")
    reason: Mapped[str] = mapped_column(Text, default="")
    changed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Watchdog(db.Model):
    """The watchdog's switch and state per program, shared by every panel process (gunicorn workers too)."""

    __tablename__ = "watchdogs"

    program: Mapped[str] = mapped_column(String(20), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    desired: Mapped[str] = mapped_column(String(10), default="running")  # "stopped" after a stop through the panel
    state: Mapped[str] = mapped_column(String(20), default="STOPPED")
    failures: Mapped[int] = mapped_column(Integer, default=0)
    retry_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    pids: Mapped[list] = mapped_column(JSON, default=list)  # what it last saw running
    changed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    @classmethod
    def meant_stopped(cls, conn, program):
        """A person stopped this program through the panel and has not started it since."""
        return conn.execute(sa.select(cls.desired).where(cls.program == program)).scalar() == "stopped"


class AlertEvent(db.Model):
    """An alert raised, and what each channel did with it (sent, failed, rate-limited)."""

    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(200), index=True)
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    delivered: Mapped[dict] = mapped_column(JSON, default=dict)


class WorkerNode(db.Model):
    """A Celery worker of the cluster as its events and replies last described it (any host)."""

    __tablename__ = "worker_nodes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)  # the node name, e.g. worker@host
    hostname: Mapped[str] = mapped_column(String(200), default="")
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    online: Mapped[bool] = mapped_column(Boolean, default=True)
    first_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    offline_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    heartbeat_freq_s: Mapped[float] = mapped_column(Float, default=2.0)
    sw_ver: Mapped[str] = mapped_column(String(40), default="")
    sw_sys: Mapped[str] = mapped_column(String(40), default="")
    active: Mapped[int] = mapped_column(Integer, default=0)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    succeeded: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    loadavg: Mapped[list | None] = mapped_column(JSON, nullable=True)
    pool: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    queues: Mapped[list | None] = mapped_column(JSON, nullable=True)
    registered: Mapped[list | None] = mapped_column(JSON, nullable=True)
    info_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


# Roles in rising order of power: each one can do everything the ones before it can.
VIEWER, OPERATOR, ADMIN = "viewer", "operator", "admin"
ROLES = (VIEWER, OPERATOR, ADMIN)


class User(db.Model):
    """A person who may use the panel; the password is kept only as a strong hash."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20), default=VIEWER)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    tokens = relationship("ApiToken", back_populates="user", cascade="all, delete-orphan")


class ApiToken(db.Model):
    """A bearer token for curl and scripts: shown once, stored as its SHA-256."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(80), default="")
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    user = relationship("User", back_populates="tokens")


class AuditEvent(db.Model):
    """Who did what, when, from where, to what, with which outcome; the panel only ever appends."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(80))
    source: Mapped[str] = mapped_column(String(64), default="")
    action: Mapped[str] = mapped_column(String(80), index=True)
    target: Mapped[str] = mapped_column(String(255), default="")
    outcome: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(Text, default="")


class PanelSession(db.Model):
    """One logged-in browser: the SHA-256 of the id in its cookie (the id itself is never stored)."""

    __tablename__ = "panel_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(255), default="")


class PausedQueue(db.Model):
    """A queue a person paused: every worker that comes online is told to stop consuming it."""

    __tablename__ = "paused_queues"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    paused_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    paused_by: Mapped[str] = mapped_column(String(80), default="")


SUSPECT, QUARANTINED = "suspect", "quarantined"  # a quarantined message's states


class QuarantinedMessage(db.Model):
    """A message a worker died holding: a suspect after one death, quarantined (out of its queue) after more."""

    __tablename__ = "quarantined_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    celery_task_id: Mapped[str] = mapped_column(String(255), unique=True)
    task_name: Mapped[str] = mapped_column(String(200))
    queue: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[str] = mapped_column(String(12), default=SUSPECT)
    deaths: Mapped[int] = mapped_column(Integer, default=0)
    evidence: Mapped[str] = mapped_column(Text, default="")
    envelope: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # the message as taken (messages.Envelope)
    first_seen: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    quarantined_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


MARKER_ID = 1


def bump_schedule_marker(session):
    """Move the change marker inside the caller's transaction."""
    table = ScheduleChange.__table__
    updated = session.execute(
        table.update().where(table.c.id == MARKER_ID)
        .values(version=table.c.version + 1, changed_at=utcnow()))
    if updated.rowcount == 0:
        session.execute(table.insert().values(id=MARKER_ID, version=1, changed_at=utcnow()))


def _touches(obj, fields):
    return isinstance(obj, Schedule) and any(sa.inspect(obj).attrs[f].history.has_changes() for f in fields)


@event.listens_for(Session, "before_flush")
def _mark_schedule_edits(session, _ctx, _instances):
    """Any insert, delete or schedule-field edit of a task bumps the marker in the same flush; a new schedule, or a
    change of its timing, starts its clock afresh (anchored_at: no run is owed from before)."""
    if any(isinstance(o, Schedule) for o in list(session.new) + list(session.deleted)) or any(
            _touches(o, Schedule.SCHEDULE_FIELDS) for o in session.dirty):
        bump_schedule_marker(session)
    new = [o for o in session.new if isinstance(o, Schedule) and o.anchored_at is None]
    for obj in new + [o for o in session.dirty if _touches(o, Schedule.TIMING_FIELDS)]:
        obj.anchored_at = utcnow()


@event.listens_for(Session, "do_orm_execute")
def _mark_bulk_schedule_edits(orm_execute_state):
    """Bulk UPDATE/DELETE statements on tasks bump the marker too (enable-all, disable-all)."""
    if not (orm_execute_state.is_update or orm_execute_state.is_delete):
        return
    mapper = orm_execute_state.bind_mapper
    if mapper is None or mapper.class_ is not Schedule:
        return
    if orm_execute_state.is_update:
        values = getattr(orm_execute_state.statement, "_values", None) or {}
        names = {getattr(k, "key", k) for k in values}
        if names and not names & set(Schedule.SCHEDULE_FIELDS):
            return
    bump_schedule_marker(orm_execute_state.session)
