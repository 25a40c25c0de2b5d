"""One place that turns errors into responses: JSON for APIs, a page for people. Never a traceback."""
import logging
import math
import time

from flask import jsonify, render_template, request
from sqlalchemy.exc import DataError, DBAPIError, OperationalError, TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from app.extensions import limiter
from gis.errors import Pin311Error

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = "5"
API_PREFIXES = ("/api/", "/open311/", "/tiles/", "/ogc/", "/arcgis/", "/channels/", "/healthz")


def wants_json():
    if request.path.startswith(API_PREFIXES):
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def error_response(status, code, message, extra=None, headers=None):
    if wants_json():
        body = {"error": code, "message": message, **(extra or {})}
        response = jsonify(body)
    else:
        response = render_template("error.html", status=status, message=message), status
        response = _as_response(response)
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _as_response(rv):
    from flask import make_response
    return make_response(rv)


def retry_after_limit():
    """{'Retry-After': seconds} until the rate limit a 429 hit resets (Flask-Limiter knows which)."""
    hit = limiter.current_limit
    seconds = max(1, math.ceil(hit.reset_at - time.time())) if hit else int(RETRY_AFTER_SECONDS)
    return {"Retry-After": str(seconds)}


def database_unavailable():
    return error_response(503, "unavailable",
                          "The service is briefly unavailable (database not reachable). Please try again.",
                          headers={"Retry-After": RETRY_AFTER_SECONDS})


def register(app):
    @app.errorhandler(Pin311Error)
    def domain_error(exc):
        extra = {"field": exc.field} if exc.field else {}
        candidates = getattr(exc, "candidates", None)
        if candidates is not None:
            extra["candidates"] = candidates
        return error_response(exc.status, exc.code, exc.message, extra)

    @app.errorhandler(HTTPException)
    def http_error(exc):
        headers = retry_after_limit() if exc.code == 429 else None
        return error_response(exc.code, exc.name.lower().replace(" ", "_"), exc.description, headers=headers)

    @app.errorhandler(OperationalError)
    @app.errorhandler(PoolTimeout)
    def db_down(exc):
        log.warning("database unavailable: %s", exc)
        return database_unavailable()

    @app.errorhandler(DataError)
    def bad_value(exc):
        # A value PostgreSQL cannot take (float underflow, out-of-range number, bad encoding) that slipped
        # past validation: the caller's input, not our failure.
        log.warning("value refused by the database: %s", str(exc.orig).strip()[:200])
        return error_response(400, "invalid_input", "A value in the request is out of range or malformed.")

    @app.errorhandler(DBAPIError)
    def db_error(exc):
        if exc.connection_invalidated:
            return database_unavailable()
        log.exception("database error")
        return error_response(500, "internal_error", "Something went wrong on our side; nothing was saved.")

    @app.errorhandler(Exception)
    def unexpected(exc):
        log.exception("unhandled error")
        return error_response(500, "internal_error", "Something went wrong on our side; nothing was saved.")
