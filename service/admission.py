"""Which requests may take a worker thread for long, so no client holds what others need.

A worker has THREADS threads. Two kinds of request can hold one for long, whoever sends
them: a request body (read at the client's pace, then parsed, which for a large body of
the worst shape costs tens of MB), and a long pull (a stream with no limit, or a limit
above what the store reads at a time: it runs at the pace of the client reading it).
Together they get THREADS - 1 places, so one thread is always left for /health, small
pulls and single reads; long pulls alone get at most THREADS - 2 (6 of 8, 14 of 16, at
least 1), so a write always finds a place too. A request that finds no place is
answered 503 with Retry-After, before anything is read or streamed (a body after waiting
up to HELD_WAIT_S for a place, a pull at once): its body stays in the socket, and its
thread is free again in a moment.

Large bodies (over LARGE_BODY_BYTES, or of unknown length) have a gate of their own
within that: one at a time in a worker is read and parsed. Its parse is the memory peak
(1 MiB of decimals is 29 MB of Python objects, the worst shape that orders.py lets
through; nested lists were 45 MB before it refused bodies so dense in arrays and
objects), and two at once would not fit Sesam's 128 MB beside the rest; the smaller
bodies that may run beside it cost under 2 MB each at worst. One more large body may
wait up to LARGE_BODY_WAIT_S for its turn (two writers of large batches at once are
normal, and a parse at a quarter core takes seconds); any other gets 503.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

LARGE_BODY_BYTES = 64 * 1024
HELD_WAIT_S = 1.0
LARGE_BODY_WAITERS = 1
LARGE_BODY_WAIT_S = 30.0


class Busy(Exception):
    """No place for this request now; the client should come back after `retry_after` s."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Gate:
    """`places` places; at most `max_waiting` callers wait for one, each at most `wait_s`."""

    def __init__(self, places: int, max_waiting: int = 0, wait_s: float = 0.0) -> None:
        self.places, self.max_waiting, self.wait_s = places, max_waiting, wait_s
        self._taken = 0
        self._waiting = 0
        self._changed = threading.Condition()

    def enter(self, wait: bool = True) -> bool:
        with self._changed:
            if self._taken < self.places:
                self._taken += 1
                return True
            if not wait or self._waiting >= self.max_waiting:
                return False
            self._waiting += 1
            try:
                deadline = time.monotonic() + self.wait_s
                while self._taken >= self.places:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._changed.wait(left):
                        return False
                self._taken += 1
                return True
            finally:
                self._waiting -= 1

    def leave(self) -> None:
        with self._changed:
            self._taken -= 1
            self._changed.notify()


class Admission:
    """The gates of one worker process."""

    def __init__(self, threads: int) -> None:
        # Threads that bodies and long pulls may hold. A body may wait a moment for one (an
        # honest body is read in a moment, so a place comes free soon); a pull does not.
        self.held = Gate(max(1, threads - 1), max_waiting=threads, wait_s=HELD_WAIT_S)
        self.long_pulls = Gate(max(1, threads - 2))
        self.large_bodies = Gate(1, LARGE_BODY_WAITERS, LARGE_BODY_WAIT_S)

    @contextmanager
    def body(self, length: int | None) -> Iterator[None]:
        """Hold a place while a body is read and parsed; Busy when there is none."""
        if not self.held.enter():
            raise Busy("every thread but one is busy with bodies and long pulls; send this "
                       "again shortly", 2)
        try:
            if length is not None and length <= LARGE_BODY_BYTES:
                yield
                return
            if not self.large_bodies.enter():
                raise Busy("another large body is being read; send this one again shortly", 2)
            try:
                yield
            finally:
                self.large_bodies.leave()
        finally:
            self.held.leave()

    def long_pull(self) -> None:
        """Take a place for a long pull (give it back with `end_long_pull`), or Busy."""
        if not self.long_pulls.enter():
            raise Busy(f"{self.long_pulls.places} long pulls are streaming already; pull again "
                       "shortly", 5)
        if not self.held.enter(wait=False):
            self.long_pulls.leave()
            raise Busy("every thread but one is busy with bodies and long pulls; pull again "
                       "shortly", 5)

    def end_long_pull(self) -> None:
        self.held.leave()
        self.long_pulls.leave()
