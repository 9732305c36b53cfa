"""Deadlines on whole request bodies, however they trickle, kept by one thread per process.

The socket's own timeout (CLIENT_TIMEOUT_S, set by the worker) only bounds each wait: a
client that sends a byte every few seconds never trips it. So each body read also gets a
deadline here; at the deadline the socket's reading side is shut, the read ends, and the
request is answered 408. One watchdog thread serves every body of the process: starting a
thread (a timer) per request cost the push receiver a tenth of its throughput.
"""
from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from typing import Self


class BodyDeadline:
    """`with BodyDeadline(sock, seconds):` around a body read; `passed` says whether the
    deadline cut it short. Without a socket (a test client) it does nothing."""

    def __init__(self, sock: socket.socket | None, seconds: float) -> None:
        self.sock, self.seconds, self.passed = sock, seconds, False
        self._done = False

    def __enter__(self) -> Self:
        if self.sock is not None:
            _WATCHDOG.watch(time.monotonic() + self.seconds, self)
        return self

    def __exit__(self, *exc_info) -> None:
        self._done, self.sock = True, None  # the watchdog drops it when its time comes

    def cut(self) -> None:
        sock = self.sock
        if self._done or sock is None:
            return
        self.passed = True
        try:
            sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass


class _Watchdog:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, BodyDeadline]] = []
        self._order = itertools.count()  # ties broken by arrival, never by comparing deadlines
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, at: float, deadline: BodyDeadline) -> None:
        with self._changed:
            heapq.heappush(self._heap, (at, next(self._order), deadline))
            if self._thread is None or not self._thread.is_alive():  # also after a fork
                self._thread = threading.Thread(target=self._run, name="body-deadlines",
                                                daemon=True)
                self._thread.start()
            self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._changed.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                _, _, due = heapq.heappop(self._heap)
            due.cut()


_WATCHDOG = _Watchdog()
