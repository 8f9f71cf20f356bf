"""Server-side sessions: the signed cookie carries only a random id; the row it names says whose, until when.

Logout deletes its row; disabling a user, changing their role or their password deletes every row of that user in
the same transaction (users.py). Every request reads its row, joined with the user, in one indexed deferred read,
so an ended session is refused at once in every process, not after a cache expires. A session ends at its
absolute lifetime (SESSION_LIFETIME_S) or after SESSION_IDLE_TIMEOUT_S without a request, whichever comes first.
"""
import hashlib
import logging
import secrets
from datetime import timedelta

from flask.sessions import SecureCookieSessionInterface
from sqlalchemy import delete, select, update

from models import PanelSession, User, db
from panel.database import reader, write_aside
from panel.security import clock

log = logging.getLogger("panel.sessions")
SEEN_RESOLUTION = timedelta(minutes=5)  # last_seen_at is coarse on purpose: not a write per poll


class SignedCookie(SecureCookieSessionInterface):
    """Flask's signed cookie (it carries the id), its serializer made once per key rather than on every request."""

    def __init__(self):
        self._serializers = {}  # (secret key, fallbacks) -> serializer; it keeps no state between calls

    def get_signing_serializer(self, app):
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        serializer = self._serializers.get(keys)
        if serializer is None:
            serializer = self._serializers[keys] = super().get_signing_serializer(app)
        return serializer

    def open_session(self, app, request):
        """No Cookie header (curl, a Bearer token): the empty session Flask would make, without parsing anything."""
        if app.secret_key and not request.environ.get("HTTP_COOKIE"):
            return self.session_class()
        return super().open_session(app, request)


def _digest(sid):
    return hashlib.sha256(sid.encode()).hexdigest()


def resolution(idle_s):
    """How stale last_seen_at may be: at most a tenth of the idle timeout, so a session never ends much late."""
    return min(SEEN_RESOLUTION, timedelta(seconds=idle_s / 10)) if idle_s else SEEN_RESOLUTION


def _idle_since(now, idle_s):
    """A session last seen before this is idle past the timeout (None: no idle timeout).

    last_seen_at lags the last request by up to one resolution: the allowance keeps a busy session from ending early."""
    return now - timedelta(seconds=idle_s) - resolution(idle_s) if idle_s else None


def start(user_id, lifetime, idle_s=0, address="", user_agent=""):
    """A new session for the user; returns the id for the cookie. Expired and idle rows of anyone are swept."""
    sid = secrets.token_urlsafe(32)
    now = clock.now()
    idle_since = _idle_since(now, idle_s)
    stale = PanelSession.expires_at <= now
    db.session.execute(delete(PanelSession).where(
        stale if idle_since is None else stale | (PanelSession.last_seen_at < idle_since)))
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


def lookup(sid, idle_s=0):
    """(username, role) of the active user behind a live session, or None; one deferred read, no write lock.

    A session idle past `idle_s` (0: no idle timeout) names nobody, as one past its lifetime; a request refreshes it."""
    if not isinstance(sid, str) or not sid:
        return None
    now = clock.now()
    rows, people = PanelSession.__table__, User.__table__
    query = (select(rows.c.id_hash, rows.c.last_seen_at, people.c.username, people.c.role)
             .join(people, people.c.id == rows.c.user_id)
             .where(rows.c.id_hash == _digest(sid), rows.c.expires_at > now, people.c.active.is_(True)))
    idle_since = _idle_since(now, idle_s)
    if idle_since is not None:
        query = query.where(rows.c.last_seen_at >= idle_since)
    with reader(db.engine).connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    if now - row.last_seen_at > resolution(idle_s):
        _note_seen(db.engine, row.id_hash, now)
    return row.username, row.role


def _note_seen(engine, id_hash, now):
    """last_seen_at, written off the request."""
    table = PanelSession.__table__
    write_aside(engine, update(table).where(table.c.id_hash == id_hash).values(last_seen_at=now),
                "note the use of a session")

