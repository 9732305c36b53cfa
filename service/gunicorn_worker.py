"""gunicorn's gthread worker, stopping the way a load balancer and Sesam expect, and
answering the requests it refuses itself in the service's JSON error shape."""
import errno
import html
import re
import socket

from gunicorn.workers.gthread import ThreadWorker

from service.serialize import error_body

_ERROR_PAGE = re.compile(rb"\AHTTP/1\.1 (\d{3}) ([^\r]*)\r\n.*?</h1>(.*)</body>", re.S)


class StopListeningThreadWorker(ThreadWorker):
    """On SIGTERM, stop listening at once, then let gunicorn finish the running requests.

    gunicorn's graceful stop only stops accepting: new connections still queue in the
    listening socket's backlog and are reset when the worker exits. Shutting the shared
    listening socket down makes the kernel refuse them straight away, so a client (or a
    load balancer) learns immediately that it must go elsewhere.
    """

    def handle_exit(self, sig, frame) -> None:
        for listener in self.sockets:
            try:
                listener.shutdown(socket.SHUT_RD)
            except OSError:
                pass
        super().handle_exit(sig, frame)

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
