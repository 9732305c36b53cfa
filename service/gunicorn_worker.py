"""gunicorn's gthread worker, changed in three small ways: slow clients cannot hold its
threads, it stops the way a load balancer and Sesam expect, and it answers the requests
it refuses itself in the service's JSON error shape."""
import errno
import html
import re
import selectors
import socket
import time
from functools import partial

from gunicorn import http
from gunicorn.http.body import ChunkedReader, LengthReader
from gunicorn.workers.gthread import ThreadWorker

from service.config import load_settings
from service.serialize import error_body

# A request's head (its line and headers) must arrive within this, or the connection is
# closed; a head longer than HEAD_MAX_BYTES goes to gunicorn's parser, which refuses it.
HEAD_TIMEOUT_S = 10.0
HEAD_MAX_BYTES = 64 * 1024
HEAD_END = b"\r\n\r\n"
# How long a connection closed with its body unread is read (and discarded) after the
# answer, so the kernel does not reset it before the client has the answer.
LINGER_S = 2.0

_ERROR_PAGE = re.compile(rb"\AHTTP/1\.1 (\d{3}) ([^\r]*)\r\n.*?</h1>(.*)</body>", re.DOTALL)


# What this worker takes from gthread and the gunicorn it ships with (requirements.txt pins
# it): the methods it overrides, with the parameters they take and a call that shows
# gunicorn still calls them; and the attributes it reads. An upgrade that changes any of
# them fails at import (and so in the tests), instead of quietly taking the protection off.
OVERRIDDEN = {  # method: (its parameters, a call of it in gunicorn's workers)
    "enqueue_req": ("self, conn", "self.enqueue_req(conn)"),
    "murder_pending": ("self", "self.murder_pending()"),
    "_cap_keepalive": ("self, deadline", "self._cap_keepalive("),
    "handle_request": ("self, req, conn", "self.handle_request(req, conn)"),
    "finish_request": ("self, conn, fs", "self.finish_request,"),
    "handle_error": ("self, req, client, addr, exc", "self.handle_error("),
    "accept": ("self, listener", "selectors.EVENT_READ, self.accept)"),
    "handle_exit": ("self, sig, frame", "signal.signal(signal.SIGTERM, self.handle_exit)"),
}
READ_ATTRIBUTES = {  # a class: the attributes its __init__ must set
    "gunicorn.workers.gthread.TConn": ("self.sock", "self.client", "self.parser", "self.data_ready"),
    "gunicorn.http.body.LengthReader": ("self.length",),
    "gunicorn.http.body.ChunkedReader": ("self.parser",),
}


def check_gunicorn_internals(worker: type = ThreadWorker) -> list[str]:
    """What no longer matches in gunicorn's internals that this worker relies on."""
    import importlib
    import inspect
    from gunicorn.workers import base, gthread

    callers = inspect.getsource(gthread) + inspect.getsource(base)
    problems = []
    for name, (parameters, call) in OVERRIDDEN.items():
        method = getattr(worker, name, None)
        found = ", ".join(inspect.signature(method).parameters) if callable(method) else None
        if found != parameters:
            problems.append(f"{worker.__name__}.{name} takes ({found}), not ({parameters})")
        elif call not in callers:
            problems.append(f"gunicorn no longer calls {name} as `{call}`")
    for path, attributes in READ_ATTRIBUTES.items():
        module, _, name = path.rpartition(".")
        source = inspect.getsource(getattr(importlib.import_module(module), name).__init__)
        problems += [f"{path} no longer sets {attribute}" for attribute in attributes
                     if f"{attribute} =" not in source]
    return problems


_PROBLEMS = check_gunicorn_internals()
if _PROBLEMS:
    raise ImportError("service/gunicorn_worker.py does not fit this gunicorn's gthread worker: "
                      + "; ".join(_PROBLEMS))


class StopListeningThreadWorker(ThreadWorker):
    """Threads only for requests that have arrived; on SIGTERM, stop listening at once.

    gthread hands a connection to one of its few threads as soon as a byte arrives, and
    the thread then blocks until the whole request head is in: a client that sends a
    header line every second holds a thread, and a handful of them (no credentials
    needed) take the service from everyone. Here the main loop reads each head itself,
    without blocking, and hands the connection over only once it is complete. A body the
    app did not read (a request refused before it, e.g. 401 or 413) closes the
    connection instead of being drained by a thread at the client's pace, and the
    linger of that close (gunicorn's close_graceful, which blocks the main loop for up
    to 2 s) is done by the main loop without blocking. (No TLS here: Sesam reaches the
    service over plain HTTP on the node's network, and heads are read as raw bytes.)

    On SIGTERM, stop listening at once, then let gunicorn finish the running requests.

    gunicorn's graceful stop only stops accepting: new connections still queue in the
    listening socket's backlog and are reset when the worker exits. Shutting the shared
    listening socket down makes the kernel refuse them straight away, so a client (or a
    load balancer) learns immediately that it must go elsewhere.
    """

    def handle_exit(self, sig, frame) -> None:
        for listener in self.sockets:
            try:
                listener.shutdown(socket.SHUT_RD)
            except (OSError, AttributeError):  # AttributeError: gunicorn closed it already
                pass
        super().handle_exit(sig, frame)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.client_timeout = load_settings().client_timeout_s
        self.reading_heads: dict = {}  # connection -> when its head must be complete
        self.lingering: dict = {}  # connection -> when to stop reading before the close

    def enqueue_req(self, conn) -> None:
        """Every way a connection reaches a thread (accepted, readable again after a
        keep-alive, bytes left over from the last request) comes here."""
        if getattr(conn, "head_ready", False):
            conn.head_ready = False
            super().enqueue_req(conn)
            return
        # Bytes the parser read ahead (a pipelined request) count towards the head; they
        # stay in its buffer, and only what is read from the socket is handed back.
        conn.head = bytearray(conn.parser.unreader.buf.getvalue() if conn.parser else b"")
        conn.head_read_ahead = len(conn.head)
        if HEAD_END in conn.head:
            self._dispatch(conn)
            return
        conn.sock.setblocking(False)
        self.reading_heads[conn] = time.monotonic() + HEAD_TIMEOUT_S
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._read_head, conn))

    def _read_head(self, conn, _sock) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away
            self._close_read(conn, self.reading_heads)
            return
        seen = len(conn.head)
        conn.head += data
        if HEAD_END in conn.head[max(0, seen - 3):] or len(conn.head) > HEAD_MAX_BYTES:
            self.poller.unregister(conn.sock)
            del self.reading_heads[conn]
            if conn.parser is None:
                conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
            conn.parser.unreader.unread(bytes(conn.head[conn.head_read_ahead:]))
            self._dispatch(conn)

    def _dispatch(self, conn) -> None:
        conn.head = bytearray()
        conn.head_ready = conn.data_ready = True
        self.enqueue_req(conn)

    def _close_read(self, conn, table: dict) -> None:
        """Close a connection the main loop was reading (its head, or its linger)."""
        self.poller.unregister(conn.sock)
        del table[conn]
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        """Also close the connections whose head did not arrive in time, and those whose
        linger is over."""
        super().murder_pending()
        now = time.monotonic()
        for table in (self.reading_heads, self.lingering):
            for conn in [conn for conn, deadline in table.items() if deadline < now]:
                self._close_read(conn, table)

    def _cap_keepalive(self, deadline) -> None:
        """When stopping, gunicorn gives kept-alive connections a last moment for a
        request already on its way; heads still coming in get the same, not their 10 s
        (Docker kills a container 10 s after SIGTERM)."""
        super()._cap_keepalive(deadline)
        for conn in self.reading_heads:
            self.reading_heads[conn] = min(self.reading_heads[conn], deadline)

    def handle_request(self, req, conn) -> bool:
        """Every wait on the client while a thread serves it (a read of its body, a write
        of the response) ends after CLIENT_TIMEOUT_S without progress: a client that
        stalls is cut off, and the thread is free again. The app logs a stream cut off
        as such ("request: stream aborted"), so the timeout itself is not logged again."""
        conn.sock.settimeout(self.client_timeout)
        try:
            keepalive = super().handle_request(req, conn)
        except TimeoutError:
            self.log.debug("a client stalled for %s s: connection cut off", self.client_timeout)
            conn.body_left_unread = False
            return False
        conn.body_left_unread = _body_left_unread(req)
        return keepalive and not conn.body_left_unread

    def finish_request(self, conn, fs) -> None:
        if getattr(conn, "body_left_unread", False) and not fs.cancelled() \
                and fs.exception() is None and fs.result() is False:
            self._linger(conn)
            return
        super().finish_request(conn, fs)

    def _linger(self, conn) -> None:
        """Close as close_graceful does (FIN first, then read what the client still
        sends), with the reading done by the main loop instead of blocking it."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.sock.setblocking(False)
        except OSError:
            self.nr_conns -= 1
            conn.close()
            return
        self.lingering[conn] = time.monotonic() + LINGER_S
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._drain, conn))

    def _drain(self, conn, _sock) -> None:
        try:
            if conn.sock.recv(65536):
                return
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._close_read(conn, self.lingering)

    def handle_error(self, req, client, addr, exc) -> None:
        """gunicorn answers what it cannot parse (a bad request line, a URI or headers too
        long, a transfer coding it does not know: 400, 414, 431, 501) before the app sees
        it, with an HTML page. It keeps its choice of status; the page becomes JSON."""
        super().handle_error(req, _JsonErrorSocket(client), addr, exc)

    def accept(self, listener) -> None:
        """The listener is shared: when another worker shut it down first, accept() fails
        with EINVAL here before this worker's own SIGTERM arrives. That means the server
        is stopping, so stop gracefully too instead of dying with the running requests."""
        try:
            super().accept(listener)
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise
            self.alive = False


class _JsonErrorSocket:
    """The client's socket, but for the one error page gunicorn writes: that is sent as
    the service's JSON error body, with the same status and message."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def gettimeout(self):
        return self._sock.gettimeout()

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(json_error_page(data))


def json_error_page(page: bytes) -> bytes:
    """Turn gunicorn's whole HTML error response into the JSON one (unchanged if its form
    is not the one expected)."""
    match = _ERROR_PAGE.match(page)
    if not match:
        return page
    status, reason = int(match.group(1)), match.group(2).decode("latin-1")
    message = html.unescape(match.group(3).decode("latin-1")).strip() or reason
    body = error_body(status, reason.lower().replace(" ", "_"), message, None)
    return (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode("latin-1") + body


def _body_left_unread(req) -> bool:
    """Whether the request's body still waits, in part, on the socket."""
    reader = getattr(getattr(req, "body", None), "reader", None)
    if isinstance(reader, LengthReader):
        return reader.length > 0
    if isinstance(reader, ChunkedReader):
        return reader.parser is not None
    return False
