"""One shape for every API error: JSON with a fitting status code, never an HTML page or a traceback."""
import logging
from urllib.parse import quote

import redis
from flask import current_app, jsonify, redirect, render_template, request
from kombu.exceptions import OperationalError as BrokerOperationalError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from panel.errors import Forbidden, HostRefused, LoginRequired, PanelError, ValidationError
from panel.web.limits import unsafe_character

log = logging.getLogger("panel.errors")
API_PREFIXES = ("/api/", "/scheduler/", "/healthz", "/metrics")  # machines' paths: JSON errors, 401 not a redirect
# The legacy status routes: the first clients read `success`, so their errors keep `success: false`.
LEGACY_STATUS_PATHS = ("/celery_status", "/restart_celery_beat")


def error_response(status, message, **extra):
    """The JSON error of every endpoint, whatever the status; the legacy status routes also keep `success: false`."""
    body = {"status": "error", "message": message, **extra}
    if request.path.rstrip("/") in LEGACY_STATUS_PATHS:
        body["success"] = False
    return jsonify(body), status


def error_page(status, title, message):
    """An HTML path's error: the panel's own page, with the navigation, saying what happened."""
    return render_template("error.html", error_status=status, title=title, message=message), status


def is_api_path(path):
    return path.startswith(API_PREFIXES) or path.rstrip("/") in LEGACY_STATUS_PATHS


def _unavailable(what, cause, word="unavailable"):
    """A system the request needs went away (database, broker): 503 with the cause, a page or JSON."""
    log.error("%s %s: %s %s: %s", request.method, request.path, what, word, cause)
    if not is_api_path(request.path):
        return error_page(503, "Service unavailable", f"The {what} is {word} right now; try again shortly.")
    return error_response(503, f"{what} {word}: {cause}")


def _refuse_unsafe_path_values(_endpoint, values):
    """A name in the URL with a control character names nothing, and PostgreSQL cannot even compare it: 400."""
    for name, value in (values or {}).items():
        if isinstance(value, str) and (problem := unsafe_character(value)):
            raise ValidationError(name, problem)


def _http_error(exc):
    """Werkzeug's errors as JSON on API paths, keeping their headers (405 says which methods are allowed)."""
    if not is_api_path(request.path):
        if exc.code is None or exc.code < 400 or exc.code == 429:  # a redirect; the login page's own 429
            return exc
        page, code = error_page(exc.code, exc.name, exc.description or exc.name)
        return page, code, [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
    if isinstance(exc, RequestEntityTooLarge):  # Flask's MAX_CONTENT_LENGTH: say the limit, name the body
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        return error_response(413, f"is larger than the limit of {limit} bytes", field="body")
    body, code = error_response(exc.code, exc.description or exc.name)
    body.headers.extend([(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"])
    return body, code


def _login_required(exc):
    """A machine gets 401 with the scheme to use; a person gets the login page, coming back here after."""
    if not is_api_path(request.path):
        return redirect(f"/login?next={quote(request.full_path.rstrip('?'))}")
    resp, code = error_response(401, str(exc))
    resp.headers["WWW-Authenticate"] = 'Bearer realm="celery-panel"'
    return resp, code


def _forbidden(exc):
    return error_response(403, str(exc)) if is_api_path(request.path) else error_page(403, "Forbidden", str(exc))


def _host_refused(exc):
    """Nothing of the panel's, not even its error page, for a host name it does not answer to."""
    if is_api_path(request.path):
        return error_response(400, str(exc))
    return str(exc), 400, {"Content-Type": "text/plain; charset=utf-8"}


def register_error_handlers(app):
    app.url_value_preprocessor(_refuse_unsafe_path_values)

    app.register_error_handler(LoginRequired, _login_required)
    app.register_error_handler(Forbidden, _forbidden)
    app.register_error_handler(HostRefused, _host_refused)

    @app.errorhandler(PanelError)
    def _domain_error(exc):
        """Bad input and failures of the outside world, each answered with the status its class carries."""
        log.warning("%s %s -> %s: %s", request.method, request.path, exc.status, exc)
        extra = {"field": exc.field} if getattr(exc, "field", None) else {}
        return error_response(exc.status, str(exc), **extra)

    # Locked past the busy timeout or unreachable; the broker gone after a route's guard let it through.
    app.register_error_handler(OperationalError, lambda exc: _unavailable("database", exc.orig))
    for broker_error in (redis.ConnectionError, redis.TimeoutError, BrokerOperationalError):
        app.register_error_handler(broker_error, lambda exc: _unavailable("broker", exc, "unreachable"))

    @app.errorhandler(PermissionError)
    def _denied(exc):
        log.error("permission denied: %s", exc)
        return error_response(500, f"permission denied while signalling a Celery process: {exc}")

    app.register_error_handler(HTTPException, _http_error)

    @app.errorhandler(Exception)
    def _unexpected(exc):
        log.exception("unhandled error on %s %s", request.method, request.path)
        if not is_api_path(request.path):
            return error_page(500, "Internal server error",
                              "Something went wrong on the panel's side; the panel log (instance/logs/panel.log) "
                              "says what.")
        return error_response(500, f"internal error: {type(exc).__name__}; see the panel log")
