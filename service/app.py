"""The application factory: settings, store, auth, JSON errors; request ids and logs around it."""
from __future__ import annotations

import hmac
import logging

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException, InternalServerError, Unauthorized

from . import api
from .admission import Admission, Busy
from .access_log import REASON, REQUEST_ID, USER, AccessLog
from .config import Settings, load_settings, redact_url
from .logs import setup_logging
from .memory import ReleaseAfterLargeBodies
from .orders import InvalidOrder
from .params import BadParameter
from .serialize import dataset_headers, error_body
from .store import (PushConflict, SinceAhead, Store, StoreRejected, StoreUnavailable, SweepRefused,
                    open_store)
from .entities import InvalidEntity

log = logging.getLogger("service")
UNAUTHENTICATED = {"api.health", "api.openapi"}


def create_app(settings: Settings | None = None, store: Store | None = None) -> Flask:
    """Wire the app together: settings, the store, routes, auth and error handlers.

    The store is prepared (migrated, the samples loaded) once per start, before the
    workers: by gunicorn's master (gunicorn.conf.py), or by `python -m service prepare`."""
    settings = settings or load_settings()
    setup_logging(settings.log_level)
    store = store or open_store(settings.database_url, settings.threads)
    if not settings.auth_enabled:
        log.warning("AUTH_USERNAME and AUTH_PASSWORD are not set (ALLOW_UNAUTHENTICATED): the "
                    "service is UNPROTECTED; anyone who can reach it can read and change every order")

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["store"] = store
    app.extensions["settings"] = settings
    app.extensions["admission"] = Admission(settings.threads)
    app.register_blueprint(api.bp)
    if settings.auth_enabled:
        app.before_request(_require_basic_auth)
    app.register_error_handler(Exception, _error_response)
    app.wsgi_app = AccessLog(ReleaseAfterLargeBodies(app.wsgi_app))  # type: ignore[method-assign]
    log.info("service started (whether its store answers: /health)",
             extra={"database": redact_url(settings.database_url),
                                     "auth": settings.auth_enabled})
    return app


def _require_basic_auth() -> None:
    """Every endpoint but the health check and the API document needs the credentials."""
    if request.endpoint not in UNAUTHENTICATED:
        _check_basic_auth(current_app.extensions["settings"])


def _check_basic_auth(settings: Settings) -> None:
    auth = request.authorization
    given_user = (auth.username or "") if auth and auth.type == "basic" else ""
    given_password = (auth.password or "") if auth and auth.type == "basic" else ""
    # Compare both, always, in constant time: no early exit that times out the username.
    user_ok = hmac.compare_digest(given_user.encode(), settings.auth_username.encode())
    password_ok = hmac.compare_digest(given_password.encode(), settings.auth_password.encode())
    if not (auth and user_ok and password_ok):
        raise Unauthorized("valid HTTP Basic credentials are required")
    request.environ[USER] = given_user  # for the request's log line (never the password)


def _error_response(error: Exception) -> Response:
    """Map every error to the one JSON shape; tracebacks and SQL go to the log only."""
    details: dict = {}
    if isinstance(error, InvalidEntity):
        status, name, message = 400, "bad_request", str(error)
        details = {"entity_id": error.entity_id}
    elif isinstance(error, (BadParameter, InvalidOrder, StoreRejected)):
        status, name, message = 400, "bad_request", str(error)
    elif isinstance(error, PushConflict):
        status, name, message = 409, "sequence_conflict", str(error)
    elif isinstance(error, SweepRefused):
        status, name, message = 422, "full_sync_refused", str(error)
    elif isinstance(error, SinceAhead):
        # The store is fine; the client is out of sync. Loud in the log, where an
        # operator looks when a pipe fails.
        log.warning("a pull's since is ahead of the store: the pipe must be reset",
                    extra={"since": error.since, "max_updated": error.identity.max_updated})
        status, name, message = 409, "since_ahead_of_store", str(error)
        details = {"since": error.since, "max_updated": error.identity.max_updated}
    elif isinstance(error, Busy):
        status, name, message = 503, "busy", str(error)
    elif isinstance(error, StoreUnavailable):
        log.error("store unavailable: %s", error, exc_info=error.__cause__ or error)
        status, name, message = 503, "unavailable", str(error)
    elif isinstance(error, HTTPException) and not isinstance(error, InternalServerError):
        status = error.code or 500
        name = (error.name or "error").lower().replace(" ", "_")
        message = error.description or error.name
    else:
        log.error("unhandled error", exc_info=error)
        status, name, message = 500, "internal_error", "the service failed; see its log"
    if status < 500:
        request.environ[REASON] = message  # the request's log line says why, as the client is told
    response = Response(error_body(status, name, message, request.environ.get(REQUEST_ID),
                                   **details),
                        status=status, mimetype="application/json")
    if isinstance(error, SinceAhead):
        response.headers.extend(dataset_headers(error.identity))
    if isinstance(error, HTTPException):  # e.g. the Allow header of a 405
        for header, value in error.get_headers():
            if header.lower() != "content-type":
                response.headers[header] = value
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="orders", charset="UTF-8"'
    if status == 503:
        response.headers["Retry-After"] = str(error.retry_after if isinstance(error, Busy) else 5)
    return response
