"""Users and API tokens: creation, roles, passwords (hashed), tokens (shown once, stored hashed)."""
import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from werkzeug.security import check_password_hash, generate_password_hash

from models import ROLES, ApiToken, User, db, utcnow
from panel.database import reader, write_aside
from panel.errors import UserError
from panel.security import clock, sessions

MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024  # a hash check costs the same whatever the length; the bound keeps bodies small
log = logging.getLogger("panel.users")
TOKEN_PREFIX = "ccp_"
TOKEN_USE_RESOLUTION = timedelta(minutes=5)
# A hash to check against when the user does not exist, so timing does not reveal usernames.
_DUMMY_HASH = generate_password_hash("not-a-real-password")
_on_write = []  # called after every write to users or tokens: caches of who a credential names forget it at once


def on_write(callback):
    """Have `callback()` run after each committed write to users or tokens in this process."""
    _on_write.append(callback)


def _written():
    for callback in _on_write:
        callback()


def _check_role(role):
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}, not {role!r}")


def _check_password(password):
    if len(password or "") < MIN_PASSWORD_CHARS:
        raise UserError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise UserError(f"a password has at most {MAX_PASSWORD_CHARS} characters")


def find(username):
    return db.session.scalar(select(User).where(User.username == username))


def get(username):
    user = find(username)
    if user is None:
        raise UserError(f"no user named {username!r}")
    return user


def create(username, password, role):
    _check_role(role)
    _check_password(password)
    if not username or len(username) > 80 or find(username):
        raise UserError(f"a user named {username!r} exists already" if username else "a username is required")
    user = User(username=username, password_hash=generate_password_hash(password), role=role)
    db.session.add(user)
    db.session.commit()
    return user


@dataclass(frozen=True)
class PasswordChanged:
    sessions_ended: int
    tokens_ended: int
    tokens_kept: int  # live API tokens that still work

    def summary(self, username, asked_to_end_tokens):
        """What the change did, in a sentence a person reads (the CLI and the API say the same)."""
        said = f"password of {username} changed; {self.sessions_ended} open session(s) ended"
        if asked_to_end_tokens:
            return f"{said}; {self.tokens_ended} API token(s) ended too"
        if self.tokens_kept:
            return (f"{said}; {self.tokens_kept} API token(s) still work (end them with the password change's "
                    f"end-tokens option, or revoke them one by one)")
        return f"{said}; no API token to end"


def set_password(username, password, end_tokens=False):
    """A new password; every open session of the user ends in the same transaction, and with end_tokens every live
    API token too. Without it tokens keep working (scripts rely on them), and the answer says how many."""
    _check_password(password)
    user = get(username)
    user.password_hash = generate_password_hash(password)
    ended = sessions.end_all_of(user.id)
    live = ApiToken.__table__
    alive = (live.c.user_id == user.id) & live.c.revoked_at.is_(None)
    kept = db.session.scalar(select(db.func.count()).select_from(live).where(alive))
    revoked = db.session.execute(update(live).where(alive).values(revoked_at=clock.now())).rowcount if end_tokens else 0
    db.session.commit()
    _written()
    return PasswordChanged(ended, revoked, kept - revoked)


def change_own_password(username, current, new, end_tokens=False):
    """A user's change of their own password: a PasswordChanged, or None when `current` is not their password."""
    user = find(username)
    if user is None or not user.active or not check_password_hash(user.password_hash, current or ""):
        return None
    return set_password(username, new, end_tokens)


def set_role(username, role):
    """A new role; a change ends every open session of the user (they log in again under the new role)."""
    _check_role(role)
    user = get(username)
    if user.role != role:
        user.role = role
        sessions.end_all_of(user.id)
    db.session.commit()
    _written()


def set_active(username, active):
    """Disable or enable; a change ends every open session, so enabling again revives none."""
    user = get(username)
    if user.active != active:
        user.active = active
        sessions.end_all_of(user.id)
    db.session.commit()
    _written()


def end_sessions(username):
    """Log a user out everywhere; returns how many sessions ended."""
    ended = sessions.end_all_of(get(username).id)
    db.session.commit()
    return ended


def all_users():
    return db.session.scalars(select(User).order_by(User.username)).all()


def authenticate(username, password):
    """The active user with this password, or None; always spends the time of one hash check."""
    user = find(username)
    if user is None:
        check_password_hash(_DUMMY_HASH, password or "")
        return None
    if not check_password_hash(user.password_hash, password or "") or not user.active:
        return None
    user.last_login_at = utcnow()
    db.session.commit()
    return user


def bootstrap_admin():
    """When no user exists, create `admin` with a random password; returns it once, or None."""
    if db.session.scalar(select(User.id).limit(1)) is not None:
        return None
    password = secrets.token_urlsafe(15)
    create("admin", password, "admin")
    return password


def _digest(token):
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(username, name=""):
    """A new token for the user: the plain text is returned once and never stored."""
    user = get(username)
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user=user, name=name, prefix=plain[:10], token_hash=_digest(plain))
    db.session.add(token)
    db.session.commit()
    return token, plain


def user_for_token(plain):
    """(username, role) of the active user behind a live token, or None; one deferred read, no write lock."""
    tokens, people = ApiToken.__table__, User.__table__
    query = (select(tokens.c.id, tokens.c.last_used_at, people.c.username, people.c.role)
             .join(people, people.c.id == tokens.c.user_id)
             .where(tokens.c.token_hash == _digest(plain), tokens.c.revoked_at.is_(None), people.c.active.is_(True)))
    with reader(db.engine).connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    if row.last_used_at is None or utcnow() - row.last_used_at > TOKEN_USE_RESOLUTION:
        _note_use(db.engine, row.id)  # coarse on purpose: not a write per poll
    return row.username, row.role


def _note_use(engine, token_id):
    """last_used_at, written off the request."""
    table = ApiToken.__table__
    write_aside(engine, update(table).where(table.c.id == token_id).values(last_used_at=utcnow()),
                f"note the use of token {token_id}")


def all_tokens():
    return db.session.scalars(select(ApiToken).order_by(ApiToken.id)).all()


def live_tokens(username):
    """How many API tokens of the user work now."""
    query = (select(db.func.count()).select_from(ApiToken).join(User, User.id == ApiToken.user_id)
             .where(User.username == username, ApiToken.revoked_at.is_(None)))
    return db.session.scalar(query)


def revoke_token(token_id):
    token = db.session.get(ApiToken, token_id)
    if token is None:
        raise UserError(f"no token with id {token_id}")
    token.revoked_at = token.revoked_at or utcnow()
    db.session.commit()
    _written()
    return token
