"""Who is asking, and may they: sessions, bearer tokens, a role per route, CSRF, headers, audit."""
import hashlib
import ipaddress
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from flask import abort, current_app, g, request, session
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.middleware.proxy_fix import ProxyFix

from models import ADMIN, ROLES, db
from panel.errors import DatabaseDown, Forbidden, LoginRequired
from panel.host.changes import ChangeMarker
from panel.security import audit, hosts, sessions, users

log = logging.getLogger("panel.auth")
PUBLIC = "public"
RANK = {role: n for n, role in enumerate(ROLES, start=1)}
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
READ_METHODS = {"GET", "HEAD"}
NOT_AUDITED = {"pages.login"}  # logins are audited by the login view itself, with the username
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = (("Content-Security-Policy", CSP), ("X-Content-Type-Options", "nosniff"),
                    ("X-Frame-Options", "DENY"), ("Referrer-Policy", "same-origin"))
NO_STORE = (("Cache-Control", "no-store"),)

STALE_IDENTITY_S = 600  # a reader keeps reading through a database outage this long, never writing
RECENT_MAX = 1000
# A poller's Bearer token is looked up (hash and query) once per this long per process, for reads only. A write to
# users or tokens through the panel (page, API or CLI, any process) bumps the instance's credentials marker, which every
# cached answer is checked against: this bound is only for a change made behind the panel's back (SQL by hand).
TOKEN_CACHE_S = 2.0
csrf = CSRFProtect()
_recent = {}  # sha256(credential) -> (identity, when the database last confirmed it)
_told = set()  # warnings given once per process


@dataclass(frozen=True)
class Identity:
    username: str
    role: str
    via: str  # "session", "token" or "off"


class TokenCache:
    """Who a Bearer token names, as the database said less than TOKEN_CACHE_S ago with no credential written since."""

    def __init__(self, ttl_s=TOKEN_CACHE_S, clock=time.monotonic):
        self.ttl_s, self.clock = ttl_s, clock
        self._found = {}  # sha256(credential) -> (identity, when its lookup began, the credentials marker's count then)

    def get(self, key, changes):
        seen = self._found.get(key)
        return seen[0] if seen and seen[2] == changes and self.clock() - seen[1] < self.ttl_s else None

    def put(self, key, identity, changes, began):
        """Keep a lookup's answer; one begun before a write is never served after it (its count is older)."""
        if len(self._found) >= RECENT_MAX:
            self._found.clear()
        self._found[key] = (identity, began, changes)

    def forget(self, key):
        self._found.pop(key, None)

    def clear(self):
        self._found.clear()


tokens = TokenCache()


def _credentials():
    """This app's credentials marker (made once: a poll must not parse a path)."""
    marker = current_app.extensions.get("credentials_marker")
    if marker is None:
        marker = current_app.extensions["credentials_marker"] = ChangeMarker(current_app.config["INSTANCE_PATH"],
                                                                             "credentials")
    return marker


def _credentials_written():
    """Every process of this instance forgets who its cached tokens name: the next read looks them up afresh."""
    tokens.clear()
    try:
        _credentials().bump()
    except OSError as exc:
        log.warning("could not mark the credentials change (%s): other panel processes may serve a cached token "
                    "for up to %g s", exc, TOKEN_CACHE_S)


users.on_write(_credentials_written)


def is_loopback(host):
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def auth_off(app=None):
    return (app or current_app).config.get("PANEL_AUTH", "on").lower() == "off"


def _cache_key(credential):
    return hashlib.sha256(repr(credential).encode()).hexdigest()


def login_session(user):
    """A new server-side session (never the one the browser came with); the cookie carries only its id."""
    logout_session()
    session["sid"] = sessions.start(user.id, current_app.permanent_session_lifetime,
                                    current_app.config["SESSION_IDLE_TIMEOUT_S"], request.remote_addr,
                                    request.user_agent.string)
    session.permanent = True


def logout_session():
    """End this browser's session at once: its row, this process's memory of it, and the cookie."""
    sid = session.get("sid")
    session.clear()
    if isinstance(sid, str) and sid:
        _recent.pop(_cache_key(("session", sid)), None)
        sessions.end(sid)


def policy_of(endpoint):
    """The least role an endpoint needs (from the URL map), PUBLIC, or None for a route nobody declared."""
    if endpoint == "static":
        return PUBLIC
    return current_app.extensions["access"].get(endpoint)


def _lookup(credential):
    """Who a credential names, read from the database (deferred reads: a locked SQLite does not stop them)."""
    kind, value = credential
    if kind == "token":
        found = users.user_for_token(value)
        return Identity(found[0], found[1], "token") if found else None
    found = sessions.lookup(value, current_app.config["SESSION_IDLE_TIMEOUT_S"])
    if found is None:
        session.clear()
        return None
    return Identity(found[0], found[1], "session")


def _identify():
    """The identity of this request: a Bearer token's read from the short cache when a read asks, else looked up."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        credential = ("token", header[7:].strip())
    elif auth_off():
        return Identity("local", ADMIN, "off") if is_loopback(request.remote_addr or "") else None
    elif session.get("sid"):
        credential = ("session", session["sid"])
    else:
        return None
    key = _cache_key(credential)
    cacheable = credential[0] == "token" and request.method in READ_METHODS  # a write is always checked afresh
    changes = _credentials().count() if cacheable else None
    identity = tokens.get(key, changes) if cacheable else None
    if identity is not None:
        return identity
    began = tokens.clock()
    identity = _confirmed(credential, key)
    if identity is None:
        tokens.forget(key)  # refused now: no read here is served the old answer
    elif cacheable:
        tokens.put(key, identity, changes, began)
    return identity


def _confirmed(credential, key):
    """Who the database says a credential names; while it is unreachable, reads go on with a recent answer."""
    try:
        identity = _lookup(credential)
    except SQLAlchemyError as exc:
        seen = _recent.get(key)
        if request.method == "GET" and seen and time.monotonic() - seen[1] < STALE_IDENTITY_S:
            log.warning("database unreachable (%s); %s reads on with its identity from %.0f s ago",
                        type(exc).__name__, seen[0].username, time.monotonic() - seen[1])
            return seen[0]
        raise DatabaseDown(f"the database is unreachable, so who you are cannot be checked: {exc}") from exc
    if identity is not None:
        if len(_recent) > RECENT_MAX:
            _recent.clear()
        _recent[key] = (identity, time.monotonic())
    else:
        _recent.pop(key, None)
    return identity


def _from_a_browser():
    """Browsers announce themselves (Origin, Sec-Fetch-Site, cookies); curl does not."""
    return any(h in request.headers for h in ("Origin", "Sec-Fetch-Site", "Cookie"))


def _needs_csrf(identity):
    if request.method not in UNSAFE_METHODS or (identity and identity.via == "token"):
        return False
    if identity and identity.via == "off":
        return _from_a_browser()
    return True


def _note_forwarded():
    """A proxy in front and TRUSTED_PROXY_HOPS unset: every client shares the proxy's address (said once)."""
    if "X-Forwarded-For" in request.headers and not current_app.config["TRUSTED_PROXY_HOPS"] and "xff" not in _told:
        _told.add("xff")
        log.warning("requests carry X-Forwarded-For but TRUSTED_PROXY_HOPS is 0: the header is ignored, so behind a "
                    "proxy every client has the proxy's address (logins are throttled per address); set "
                    "TRUSTED_PROXY_HOPS to the number of proxies in front of the panel")


def enforce():
    """Runs before every request: identify, check the route's role, then CSRF."""
    _note_forwarded()
    if request.endpoint is None:  # 404 and 405: let the error handlers answer
        return None
    access = policy_of(request.endpoint)
    if access is None:
        log.error("route %s has no access policy; refused", request.endpoint)
        abort(403, "this route has no access policy")
    g.identity = _identify()
    if db.session.registry.has():  # end the lookup's transaction: a long control action must not hold the DB
        db.session.rollback()
    if access != PUBLIC:
        if g.identity is None:  # the web layer answers: a 401 to a machine, the login page to a person
            raise LoginRequired("authentication required: log in or send a Bearer token")
        if RANK[g.identity.role] < RANK[access]:
            raise Forbidden(f"your role ({g.identity.role}) cannot do this; it needs {access}")
    if _needs_csrf(g.identity):
        csrf.protect()
    return None


def _outcome(code, body):
    """A 200 that did not do what was asked (/restart_celery_beat of a Beat that is not running) is no success."""
    if code < 400:
        refused = isinstance(body, dict) and (body.get("success") is False or body.get("status") == "error")
        return "failure" if refused else "success"
    return "denied" if code in (400, 401, 403, 429) else "failure"


def audit_request(response):
    """Every state-changing request is written to the audit log, refused ones too."""
    if request.method in UNSAFE_METHODS and request.endpoint not in NOT_AUDITED:
        identity = g.get("identity")
        body = response.get_json(silent=True) if response.is_json else None
        detail = (f"{response.status_code} {body.get('message', '')}" if isinstance(body, dict)
                  else str(response.status_code))
        audit.record(identity.username if identity else "anonymous", request.remote_addr, request.endpoint or "unknown",
                     request.path, _outcome(response.status_code, body), detail[:2000])
    return response


def security_headers(response):
    """The headers every answer carries unless its view set its own; one pass over the headers (every poll)."""
    headers = response.headers
    present = {name.lower() for name, _ in headers.items()}
    # pages, exports and JSON carry what a user may see: no copy kept anywhere
    for name, value in SECURITY_HEADERS if request.endpoint == "static" else SECURITY_HEADERS + NO_STORE:
        if name.lower() not in present:
            headers.add(name, value)
    return response


def trust_proxies(app, hops):
    """Behind `hops` reverse proxies, the client is the address they name in X-Forwarded-For (the last `hops`
    entries, the ones they appended); with 0, the header is never read, so a client cannot forge its address."""
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)


def init_auth(app):
    """Wire authentication into the app; refuse PANEL_AUTH=off on anything but loopback."""
    cfg = app.config
    if auth_off(app) and not is_loopback(cfg["PANEL_HOST"]):
        raise RuntimeError(f"refusing to start: PANEL_AUTH=off is only allowed on loopback, not on {cfg['PANEL_HOST']}")
    cfg.setdefault("WTF_CSRF_CHECK_DEFAULT", False)  # we call protect() ourselves: token requests skip it
    cfg.setdefault("WTF_CSRF_TIME_LIMIT", None)      # valid for the session's life
    cfg.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
               SESSION_COOKIE_SECURE=bool(cfg.get("PANEL_SECURE_COOKIES")),
               PERMANENT_SESSION_LIFETIME=timedelta(seconds=cfg["SESSION_LIFETIME_S"]))
    trust_proxies(app, cfg["TRUSTED_PROXY_HOPS"])
    app.session_interface = sessions.SignedCookie()
    csrf.init_app(app)
    if auth_off(app):
        hosts.guard(app)  # first of all: a request for another host name gets nothing, not even a static file
    app.before_request(enforce)
    app.after_request(audit_request)
    app.after_request(security_headers)

