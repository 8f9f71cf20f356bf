"""One shape for every API error: JSON with a fitting status code, never an HTML page or a traceback."""
import logging

from flask import jsonify, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger("panel.errors")
API_PREFIXES = ("/api/", "/scheduler/", "/healthz")
SEED_002_PATHS = ("/celery_status", "/restart_celery_beat")


def error_response(status, message, **extra):
    """The JSON error of our endpoints; seed 002's routes keep their `success` shape."""
    if request.path.rstrip("/") in SEED_002_PATHS:
        body = {"success": False, "message": message, **extra}
    else:
        body = {"status": "error", "message": message, **extra}
    return jsonify(body), status


def is_api_path(path):
    return path.startswith(API_PREFIXES) or path.rstrip("/") in SEED_002_PATHS


def register_error_handlers(app):
    @app.errorhandler(HTTPException)
    def _http_error(exc):
        if not is_api_path(request.path):
            return exc
        return error_response(exc.code, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc):
        log.exception("unhandled error on %s %s", request.method, request.path)
        if not is_api_path(request.path):
            return "Internal server error; see instance/logs/panel.log", 500
        return error_response(500, f"internal error: {type(exc).__name__}; see the panel log")
