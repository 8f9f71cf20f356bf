"""Server-side sessions: the signed cookie carries only a random id; the row it names says whose, until when.

Logout deletes its row; disabling a user, changing their role or their password deletes every row of that user in
the same transaction (users.py). Every request reads its row, joined with the user, in one indexed deferred read,
so an ended session is refused at once in every process, not after a cache expires.
"""
import hashlib
import logging
import secrets
from datetime import timedelta

from sqlalchemy import delete, select, update

from models import PanelSession, User, db, utcnow
from panel.database import reader, write_aside

log = logging.getLogger("panel.sessions")
SEEN_RESOLUTION = timedelta(minutes=5)  # last_seen_at is coarse on purpose: not a write per poll


def _digest(sid):
    return hashlib.sha256(sid.encode()).hexdigest()


def start(user_id, lifetime, address="", user_agent=""):
    """A new session for the user; returns the id for the cookie. Expired rows of anyone are swept on the way."""
    sid = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.execute(delete(PanelSession).where(PanelSession.expires_at <= now))
    db.session.add(PanelSession(id_hash=_digest(sid), user_id=user_id, created_at=now, last_seen_at=now,
                                expires_at=now + lifetime, address=(address or "")[:64],
                                user_agent=(user_agent or "")[:255]))
    db.session.commit()
    return sid


def end(sid):
    """Logout: the row goes, so the cookie (and any copy of it) names nothing from now on."""
    db.session.execute(delete(PanelSession).where(PanelSession.id_hash == _digest(sid)))
    db.session.commit()


def end_all_of(user_id):
    """Every session of a user, in the caller's transaction (the caller commits with its own change)."""
    return db.session.execute(delete(PanelSession).where(PanelSession.user_id == user_id)).rowcount


def lookup(sid):
    """(username, role) of the active user behind a live session, or None; one deferred read, no write lock."""
    if not isinstance(sid, str) or not sid:
        return None
    rows, people = PanelSession.__table__, User.__table__
    query = (select(rows.c.id_hash, rows.c.last_seen_at, people.c.username, people.c.role)
             .join(people, people.c.id == rows.c.user_id)
             .where(rows.c.id_hash == _digest(sid), rows.c.expires_at > utcnow(), people.c.active.is_(True)))
    with reader(db.engine).connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    if utcnow() - row.last_seen_at > SEEN_RESOLUTION:
        _note_seen(db.engine, row.id_hash)
    return row.username, row.role


def _note_seen(engine, id_hash):
    """last_seen_at, written off the request."""
    table = PanelSession.__table__
    write_aside(engine, update(table).where(table.c.id_hash == id_hash).values(last_seen_at=utcnow()),
                "note the use of a session")

