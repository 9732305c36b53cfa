"""Bounded load, and SIGTERM under load, against the real service (loopback only)."""
from __future__ import annotations

import json
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from tests.support.memory import MemorySampler
from tests.support.databases import load_orders
from tests.support.servers import raw_get, start_gunicorn
from tests.support.targets import http_target

ORDERS = 50_000


@pytest.fixture
def loaded(database_url):
    return load_orders(database_url, ORDERS)


def test_incremental_pulls_under_load_while_writers_change_orders(loaded, tmp_path):
    if not shutil.which("wrk"):
        pytest.skip("wrk is not installed (apt-get install wrk)")
    server = start_gunicorn(loaded, tmp_path, WEB_CONCURRENCY="2", THREADS="8", LOG_LEVEL="WARNING")
    sampler = MemorySampler(server.process.pid)
    api = http_target("gunicorn", f"{server.url}/api/orders", None, None, writable=True)
    stop, writes, write_errors = threading.Event(), [0], []

    def writer(seed):
        rng = random.Random(seed)
        while not stop.is_set():
            order_id = rng.randint(1, ORDERS)
            status = api.write("PUT", f"/api/orders/{order_id}",
                               {"Username": f"w{seed}", "Orders": "x", "TotalSum": rng.randint(0, 99)})
            if status != 200:
                write_errors.append(status)
            writes[0] += 1

    writers = [threading.Thread(target=writer, args=(seed,)) for seed in range(2)]
    try:
        for thread in writers:
            thread.start()
        output = subprocess.run(["wrk", "-t2", "-c32", "-d5s", "--latency",
                                 f"{server.url}/api/orders?since={ORDERS - 1000}&limit=1000"],
                                capture_output=True, text=True, timeout=60, check=False).stdout
        # Then several full syncs at once, still under the writers.
        results = []
        syncs = [threading.Thread(target=lambda: results.append(raw_get(server.port, "/api/orders")))
                 for _ in range(4)]
        for thread in syncs:
            thread.start()
        for thread in syncs:
            thread.join(120)
    finally:
        stop.set()
        for thread in writers:
            thread.join(30)
        rss, pss = sampler.stop()
        server.stop()
    requests = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = re.search(r"50%\s+(\S+)", output).group(1)
    p99 = re.search(r"99%\s+(\S+)", output).group(1)
    print(f"load: {requests:,.0f} incremental pulls/s of 1,000 entities (p50 {p50}, p99 {p99}) with "
          f"{writes[0]} writes alongside, then 4 full syncs at once; peak memory RSS {rss:.0f} MB, "
          f"PSS {pss:.0f} MB")
    assert "Non-2xx" not in output and "Socket errors" not in output, output
    assert not write_errors and writes[0] > 20
    for response, body in results:
        assert response.status == 200 and len(json.loads(body)) >= ORDERS
    assert pss < 128  # the service's real footprint (shared pages counted once)


def test_sigterm_during_full_syncs_finishes_them_refuses_new_ones_and_exits_0(loaded, tmp_path):
    server = start_gunicorn(loaded, tmp_path, WEB_CONCURRENCY="2", THREADS="8", GRACEFUL_TIMEOUT="20")
    bodies = []

    def slow_full_sync():
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"GET /api/orders HTTP/1.0\r\nHost: x\r\n\r\n")
            pieces = []
            while piece := sock.recv(65536):
                pieces.append(piece)
                time.sleep(0.01)
            bodies.append(b"".join(pieces))

    readers = [threading.Thread(target=slow_full_sync) for _ in range(3)]
    for thread in readers:
        thread.start()
    time.sleep(0.5)
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    with pytest.raises(ConnectionRefusedError):  # the listener closes at once: new clients are refused
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
    code = server.process.wait(30)
    took = time.monotonic() - started
    for thread in readers:
        thread.join(30)
    print(f"SIGTERM with 3 full syncs in flight: all completed, exit {code} after {took:.1f} s")
    assert code == 0 and took < 20
    assert len(bodies) == 3
    for raw in bodies:
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200"))
        assert len(json.loads(body)) == ORDERS
