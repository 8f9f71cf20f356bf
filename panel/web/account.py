"""Your own account: change your password, as a page and as JSON, and end your API tokens with it if you like."""
from flask import current_app, g, jsonify, render_template, request
from werkzeug.exceptions import TooManyRequests

from panel.errors import ConflictError, Forbidden, UserError, ValidationError
from panel.security import devices, lockout, users
from panel.security.auth import login_session
from panel.web.contract import api, parse
from panel.web.schemas.account import PasswordChange, PasswordChanged

WRONG_CURRENT = "current_password: is not your password"
NO_USER = ("login is off (PANEL_AUTH=off): there is no user whose password could change; use "
           "`flask --app app users set-password NAME`")


def _change(change):
    """Check the current password, throttled as a login is (a stolen session must not guess it), then change it."""
    identity = g.identity
    if identity.via == "off":
        raise ConflictError(NO_USER)
    cfg = current_app.config
    attempt = lockout.Attempt(identity.username, request.remote_addr or "", devices.device_of(identity.username))
    refused = lockout.refusal(cfg, attempt)
    if refused:
        raise TooManyRequests(refused.message, retry_after=refused.retry_after)
    changed = users.change_own_password(identity.username, change.current_password, change.new_password,
                                        change.end_tokens)
    if changed is None:
        lockout.failed(cfg, attempt, "wrong current password at a password change")
        raise Forbidden(WRONG_CURRENT)
    if identity.via == "session":  # the change ended every session: this browser carries on in a new one
        login_session(users.get(identity.username))
    return changed


def _said(changed, end_tokens):
    here = " (this browser stays logged in)" if g.identity.via == "session" else ""
    said = changed.summary(g.identity.username, end_tokens).replace(" ended", f" ended{here}", 1)
    return f"{said[0].upper()}{said[1:]}."


@api(PasswordChanged, 400, 403, 409, 429)
def change_password(json: PasswordChange):
    """Change your own password. Every session of yours ends (a browser asking is logged in again); with
    `end_tokens` every API token of yours too, else they keep working; the answer says how many of each.

    403: the current password is wrong; 429 (with Retry-After): too many wrong ones, counted as failed logins."""
    changed = _change(json)
    return jsonify({"status": "success", "message": _said(changed, json.end_tokens),
                    "sessions_ended": changed.sessions_ended, "tokens_ended": changed.tokens_ended,
                    "tokens_kept": changed.tokens_kept})


def _page(status=200, headers=None, **shown):
    off = g.identity.via == "off"
    tokens = 0 if off else users.live_tokens(g.identity.username)
    return render_template("account.html", login_off=off, tokens=tokens, **shown), status, headers or {}


def account_page():
    """Your account: the password change form, with the offer to end your API tokens too."""
    if request.method == "GET":
        return _page()
    form = request.form
    end_tokens = form.get("end_tokens") == "1"
    try:
        if form.get("new_password", "") != form.get("new_password_again", ""):
            raise ValidationError("new_password_again", "is not the same as the new password")
        change = parse(PasswordChange, {"current_password": form.get("current_password", ""),
                                        "new_password": form.get("new_password", ""), "end_tokens": end_tokens})
        changed = _change(change)
    except TooManyRequests as exc:
        return _page(429, {"Retry-After": str(exc.retry_after)}, error=exc.description)
    except (ValidationError, Forbidden, ConflictError, UserError) as exc:
        return _page(exc.status, error=str(exc))
    return _page(done=_said(changed, end_tokens))
