"""One JSON object per log line on stdout, with the request id of the request being served."""
from __future__ import annotations

import contextvars
import json
import logging
import sys
import time

import orjson

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else on a record came in through `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


# Every request writes a log line: skip what a record would otherwise compute and this
# format never shows (thread and process names, the caller's file and line).
logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
logging._srcfile = None  # documented in the logging HOWTO, "Optimization"


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line: time, level, logger, message, request id, extras."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._last_second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": f"{self._timestamp(int(record.created))}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        entry.update({key: value for key, value in vars(record).items() if key not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(entry, default=str).decode()
        except TypeError:  # e.g. an integer beyond 64 bits: the slower encoder takes anything
            return json.dumps(entry, default=str)

    def _timestamp(self, second: int) -> str:
        """The date and time to the second, formatted once per second. One tuple holds
        both, so a thread never pairs one second with another's text."""
        cached_second, text = self._last_second
        if second != cached_second:
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._last_second = (second, text)
        return text


class StdoutHandler(logging.StreamHandler):
    """Write to whatever sys.stdout is at the time of the record (test capture included)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


def json_handler() -> logging.Handler:
    handler = StdoutHandler()
    handler.setFormatter(JsonFormatter())
    return handler


class AtMostEvery(logging.Filter):
    """Let a logger's records through at most once every `seconds` (the first at once),
    counting the ones held back: the connection pool retries an unreachable database
    twice a second, and the portal shows an operator only the last 1,000 lines."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds, self._next, self._held = seconds, 0.0, 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now < self._next:
            self._held += 1
            return False
        if self._held:
            record.msg = f"{record.msg} (and {self._held} like it in the last {self.seconds:g} s)"
        self._next, self._held = now + self.seconds, 0
        return True


POOL_LOG_EVERY_S = 30


def setup_logging(level: str) -> None:
    """Send the root logger (and so the app's loggers) to stdout as JSON at `level`."""
    root = logging.getLogger()
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        root.handlers = [json_handler()]
    root.setLevel(level)
    pool = logging.getLogger("psycopg.pool")
    if not any(isinstance(f, AtMostEvery) for f in pool.filters):
        pool.addFilter(AtMostEvery(POOL_LOG_EVERY_S))
