"""The gates that keep slow and heavy clients to their share of a worker's threads."""
import threading
import time

import pytest

from service.admission import Admission, Busy, Gate, LARGE_BODY_BYTES


def test_a_gate_lets_in_its_places_then_one_waiter_then_refuses():
    gate = Gate(2, max_waiting=1, wait_s=2)
    assert gate.enter() and gate.enter()
    waited = []
    waiter = threading.Thread(target=lambda: waited.append(gate.enter()))
    waiter.start()
    time.sleep(0.2)
    assert not gate.enter()  # the one waiting place is taken: refused at once
    gate.leave()
    waiter.join(5)
    assert waited == [True]


def test_a_waiter_gives_up_after_its_wait():
    gate = Gate(1, max_waiting=1, wait_s=0.2)
    assert gate.enter()
    started = time.monotonic()
    assert not gate.enter() and 0.15 < time.monotonic() - started < 2


def test_one_thread_is_never_given_to_bodies_or_long_pulls_and_one_more_not_to_long_pulls():
    admission = Admission(threads=8)
    for _ in range(6):
        admission.long_pull()
    with pytest.raises(Busy):
        admission.long_pull()  # THREADS - 2: a write still finds a place
    with admission.body(100), pytest.raises(Busy), admission.body(100):
        pass  # THREADS - 1 in all: /health keeps a thread
    for _ in range(6):
        admission.end_long_pull()
    with admission.body(100):  # the places came back
        pass


def test_large_bodies_are_read_one_at_a_time():
    admission = Admission(threads=8)
    with admission.body(LARGE_BODY_BYTES + 1), admission.body(LARGE_BODY_BYTES):
        started = time.monotonic()
        admission.large_bodies.wait_s = 0.2
        with pytest.raises(Busy), admission.body(None):  # chunked: of unknown length, so large
            pass
        assert time.monotonic() - started >= 0.15  # it waited its turn first
