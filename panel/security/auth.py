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
from panel.security import audit, hosts, sessions, users

log = logging.getLogger("panel.auth")
PUBLIC = "public"
RANK = {role: n for n, role in enumerate(ROLES, start=1)}
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
NOT_AUDITED = {"pages.login"}  # logins are audited by the login view itself, with the username
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")

STALE_IDENTITY_S = 600  # a reader keeps reading through a database outage this long, never writing
RECENT_MAX = 1000
csrf = CSRFProtect()
_recent = {}  # sha256(credential) -> (identity, when the database last confirmed it)
_told = set()  # warnings given once per process


@dataclass(frozen=True)
class Identity:
    username: str
    role: str
    via: str  # "session", "token" or "off"


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
    """The identity of this request; while the database is unreachable, reads go on with a recent answer."""
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
    db.session.rollback()  # end the lookup's transaction: a long control action must not hold the DB
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
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != "static":  # pages, exports and JSON carry what a user may see: no copy kept anywhere
        response.headers.setdefault("Cache-Control", "no-store")
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
    csrf.init_app(app)
    if auth_off(app):
        hosts.guard(app)  # first of all: a request for another host name gets nothing, not even a static file
    app.before_request(enforce)
    app.after_request(audit_request)
    app.after_request(security_headers)

