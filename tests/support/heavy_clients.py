"""Clients that hold valid credentials and are slow or heavy (issue 24), for the tests and
the benchmark's limits mode alike: bodies that stall, pulls never read, bodies of the
costliest shape, and the clock on /health and a small pull while they run."""
from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Self

from tests.support.servers import raw_get


def head(auth: dict[str, str]) -> str:
    return "\r\n".join(f"{name}: {value}" for name, value in {**auth, "Host": "t"}.items())


def connect(port: int, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket()
    if receive_buffer:  # a client that never reads fills its window at once
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


def stalled_body(port: int, auth: dict[str, str]) -> socket.socket:
    """A PUT that declares 100 bytes and sends 1."""
    sock = connect(port)
    sock.sendall((f"PUT /api/orders/7 HTTP/1.1\r\n{head(auth)}\r\nContent-Type: application/json"
                  "\r\nContent-Length: 100\r\n\r\n{").encode())
    return sock


def unread_pull(port: int, auth: dict[str, str]) -> socket.socket:
    """A full pull whose client never reads a byte of the answer."""
    sock = connect(port, receive_buffer=4096)
    sock.sendall(f"GET /api/orders HTTP/1.1\r\n{head(auth)}\r\n\r\n".encode())
    return sock


def answer(sock: socket.socket) -> bytes:
    """Whatever the server sends until it closes (or 10 s of silence)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except OSError:
        pass
    return data


def slowest_answer(port: int, auth: dict[str, str], seconds: float) -> float:
    """Ask /health and a small pull over and over for `seconds`; the slowest answer (s).
    Any answer but 200 fails."""
    worst, deadline = 0.0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        for path in ("/health", "/api/orders?limit=5"):
            started = time.monotonic()
            response, body = raw_get(port, path, auth, timeout=10)
            worst = max(worst, time.monotonic() - started)
            if response.status != 200:
                raise AssertionError(f"{path}: {response.status} {body[:300]!r}")
        time.sleep(0.1)
    return worst


def worst_shape_body(size: int = 1024 * 1024) -> bytes:
    """Decimals, as many as fit in `size` bytes: the costliest JSON per byte that the
    service parses (29 MB of Python objects per MiB; empty objects 25, nested lists 45,
    but those are refused for their density before parsing: nested_lists_body)."""
    count = (size - 2) // 4
    return b"[" + b",".join([b"1.5"] * count) + b"]"


def nested_lists_body(size: int = 1024 * 1024) -> bytes:
    """Nested lists, 400 deep, as many as fit: the costliest JSON per byte measured, if it
    were parsed (45 MB per MiB)."""
    unit = b"[" * 400 + b"]" * 400
    count = (size - 2) // (len(unit) + 1)
    return b"[" + b",".join([unit] * count) + b"]"


def post_at_once(url: str, body: bytes, auth: dict[str, str], count: int) -> list[tuple[int, str]]:
    """POST `body` to `url` from `count` clients at once; each one's (status, Retry-After)."""
    answers: list[tuple[int, str]] = []

    def post() -> None:
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json", **auth})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                answers.append((response.status, ""))
        except urllib.error.HTTPError as error:
            answers.append((error.code, error.headers.get("Retry-After", "")))
        except OSError as error:
            answers.append((0, str(error)))

    posters = [threading.Thread(target=post) for _ in range(count)]
    for poster in posters:
        poster.start()
    for poster in posters:
        poster.join(180)
    return answers


class PeakSampler:
    """The highest of `read()` while in the `with` block, sampled every 50 ms."""

    def __init__(self, read) -> None:
        self.read, self.peak = read, 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, self.read())
            time.sleep(0.05)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._done.set()
        self._thread.join()
