"""Queues paused through the panel: no worker consumes them until they are resumed (kept across worker restarts)."""
from datetime import datetime

from sqlalchemy import DateTime, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from models import db, utcnow
from panel.database import reader


class PausedQueue(db.Model):
    """A queue a person paused: every worker that comes online is told to stop consuming it."""

    __tablename__ = "paused_queues"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    paused_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    paused_by: Mapped[str] = mapped_column(String(80), default="")


def names():
    """Every paused queue's name: a read of its own that never holds a write lock (SQLite), whoever asks."""
    with reader(db.engine).connect() as conn:
        return set(conn.scalars(select(PausedQueue.name)).all())


def is_paused(name):
    return name in names()


def record(name, by):
    """Keep the pause (the first pause's time and author stay when it is paused again)."""
    table = PausedQueue.__table__
    with db.engine.begin() as conn:
        if conn.execute(select(table.c.name).where(table.c.name == name)).first() is None:
            try:
                with conn.begin_nested():
                    conn.execute(table.insert().values(name=name, paused_at=utcnow(), paused_by=(by or "")[:80]))
            except IntegrityError:  # paused at the same moment by another request: theirs stands
                pass


def forget(name):
    """Drop the pause; True when there was one."""
    table = PausedQueue.__table__
    with db.engine.begin() as conn:
        return conn.execute(table.delete().where(table.c.name == name)).rowcount > 0
