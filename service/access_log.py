"""Request ids and the access log, as WSGI middleware around the Flask app.

Every request gets an id (the caller's X-Request-Id when it is safe to echo, else a new
one), answered in the X-Request-Id header and attached to every log line written while
the request is served, streaming included. One "request" line is logged when the
response is closed, so its duration covers the whole stream and a pull's line says how
many entities went out and whether the array was completed.

The portal shows an operator the last 1,000 lines, so the container's health check (every
5 s) must not push the pulls out of sight: a /health that answers as it did before is
logged at DEBUG, and a change of its answer at INFO (back to 200) or WARNING.

This is middleware rather than Flask hooks because it is on the path of every small
pull: Flask's before/after/teardown hooks cost more than the rest of such a request.
"""
from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator

from .logs import request_id_var

log = logging.getLogger("service")
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
REQUEST_ID = "orders.request_id"  # environ keys the app reads and writes
PULL_STATS = "orders.pull_stats"
USER = "orders.user"  # the Basic-auth user, once the app has checked the credentials
REASON = "orders.reason"  # why a request was refused (4xx): what the client was told
MAX_REASON = 300  # characters: a line stays a line; the JSON encoder escapes the rest
HEALTH_PATH = "/health"
_last_health_status: int | None = None  # this process's last /health answer


def _new_request_id() -> str:
    """128 random bits as 32 hex digits. An id needs to be unique, not secret, so the
    fast generator does (it is reseeded in every forked worker; uuid4 costs a syscall)."""
    return f"{random.getrandbits(128):032x}"


class PullStats:
    """What a pull's stream served; the view fills it in, the access log reads it."""

    __slots__ = ("complete", "entities", "limit", "since")

    def __init__(self, since: int, limit: int | None) -> None:
        self.since, self.limit = since, limit
        self.entities = 0
        self.complete = False

    def add(self, count: int) -> None:
        self.entities += count


class AccessLog:
    def __init__(self, app: Callable) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if _SAFE_REQUEST_ID.fullmatch(incoming) else _new_request_id()
        environ[REQUEST_ID] = request_id
        request_id_var.set(request_id)
        status: list[str] = []

        def start_with_id(line: str, headers: list, exc_info=None):
            status[:] = [line]
            headers.append(("X-Request-Id", request_id))
            return start_response(line, headers, exc_info)

        try:
            body = self.app(environ, start_with_id)
        except BaseException:
            request_id_var.set(None)
            raise
        return _LoggedBody(body, environ, status, started)


class _LoggedBody:
    """The app's response body, unchanged; closing it writes the access log line."""

    __slots__ = ("_body", "_chunks", "_environ", "_started", "_status")

    def __init__(self, body: Iterable[bytes], environ: dict, status: list[str],
                 started: float) -> None:
        self._body, self._chunks = body, iter(body)
        self._environ, self._status, self._started = environ, status, started

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            try:
                self._log()
            finally:
                request_id_var.set(None)

    def _log(self) -> None:
        environ = self._environ
        # WSGI hands the path over as latin-1 text of the raw bytes; log it as sent.
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
        status = int(self._status[0][:3]) if self._status else None
        fields = {"method": environ.get("REQUEST_METHOD"), "path": path, "status": status,
                  "duration_ms": round((time.perf_counter() - self._started) * 1000, 2),
                  "client": environ.get("REMOTE_ADDR")}
        if environ.get(USER):
            fields["user"] = environ[USER]
        reason = environ.get(REASON)
        if reason:
            fields["reason"] = reason if len(reason) <= MAX_REASON else reason[:MAX_REASON] + "..."
        stats: PullStats | None = environ.get(PULL_STATS)
        if stats is not None:
            fields.update(since=stats.since, limit=stats.limit, entities=stats.entities,
                          complete=stats.complete)
            # A HEAD is answered without its body, so its stream is never read to the end.
            if not stats.complete and environ.get("REQUEST_METHOD") != "HEAD":
                log.warning("request: stream aborted", extra=fields)
                return
        if path == HEALTH_PATH:
            _log_health(status, fields)
            return
        log.info("request", extra=fields)


def _log_health(status: int | None, fields: dict) -> None:
    global _last_health_status
    previous, _last_health_status = _last_health_status, status
    if status == previous:
        log.debug("request", extra=fields)
    elif status == 200:
        log.info("health: ok" if previous is None else "health: ok again", extra=fields)
    else:
        log.warning("health: failing", extra=fields)
