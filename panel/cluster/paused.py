"""Queues paused through the panel: no worker consumes them until they are resumed (kept across worker restarts)."""

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from models import PausedQueue, db, utcnow
from panel.database import reader


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
