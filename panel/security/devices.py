"""Known devices: a signed cookie set by a successful login, so a browser that got in before is no stranger.

The login throttles (lockout.py) are for strangers: addresses that failed, or that share an address with some that
did (a NAT, a proxy). A browser that logged in as a user before carries this cookie, and its attempts as that user
are counted on their own, per device: failures from elsewhere, or from its own shared address, never lock it out
(OWASP's "device cookies"). The cookie only says that this browser got in before; it never logs anyone in.
"""
import hashlib
import secrets

from flask import current_app, request
from itsdangerous import BadData, URLSafeTimedSerializer

COOKIE = "panel_device"
KNOWN_DEVICE_S = 30 * 86400  # a browser is remembered this long after its last successful login
ACCOUNTS_MAX = 8  # accounts one browser is remembered for
_SALT = "panel.known-device"


def _signer():
    return URLSafeTimedSerializer(current_app.secret_key, salt=_SALT)


def _account(username):
    return hashlib.sha256(username.encode()).hexdigest()[:16]  # the cookie need not name anyone


def _read():
    """The cookie's content when it is ours, intact and young enough; else None."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        data = _signer().loads(raw, max_age=KNOWN_DEVICE_S)
    except BadData:
        return None
    valid = isinstance(data, dict) and isinstance(data.get("d"), str) and isinstance(data.get("a"), list)
    return data if valid else None


def device_of(username):
    """The id of this browser if it logged in as `username` before (within KNOWN_DEVICE_S), else None."""
    data = _read()
    return data["d"] if data and _account(username) in data["a"] else None


def target(username, device):
    """The audit log's target of a login attempt: the account, and the known device it came from if any."""
    return f"{username} on known device {device}" if device else username


def remember(response, username):
    """After a successful login: this browser is known for `username` (renewed for KNOWN_DEVICE_S)."""
    data = _read() or {"d": secrets.token_urlsafe(12), "a": []}
    mine = _account(username)
    accounts = [mine] + [a for a in data["a"] if a != mine]
    response.set_cookie(COOKIE, _signer().dumps({"d": data["d"], "a": accounts[:ACCOUNTS_MAX]}),
                        max_age=KNOWN_DEVICE_S, httponly=True, samesite="Lax",
                        secure=bool(current_app.config.get("PANEL_SECURE_COOKIES")))
    return response
