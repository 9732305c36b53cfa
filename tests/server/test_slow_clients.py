"""Slow and idle clients cannot take the service from others (issue 16, point 5): 50
connections trickling headers, 50 trickling bodies, 50 idle keep-alives, none with
credentials, while a normal client pulls. Loopback only, bounded in time; stops itself."""
import socket
import threading
import time

import pytest

from tests.support.databases import load_orders
from tests.support.servers import basic_auth, raw_get, start_gunicorn

USER, PASSWORD = "sesam", "slow-client-test"
CONNECTIONS = 50
SECONDS = 6.0


def trickle(port: int, first: bytes, drip: bytes, stop: threading.Event, opened: list) -> None:
    """Open a connection, send `first`, then one `drip` a second until told to stop."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError:
        return
    opened.append(sock)
    try:
        sock.sendall(first)
        while not stop.wait(1.0):
            sock.sendall(drip)
    except OSError:
        pass  # the server closed it: what it may do with a slow client
    finally:
        sock.close()


def idle_keepalive(port: int, stop: threading.Event, opened: list) -> None:
    """One ordinary request, then the connection held open, idle."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        opened.append(sock)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        sock.recv(65536)
        stop.wait(SECONDS + 2)
    except OSError:
        pass


@pytest.fixture
def server(tmp_path):
    url = load_orders(f"sqlite:///{tmp_path}/orders.sqlite3", 200)
    server = start_gunicorn(url, tmp_path, AUTH_USERNAME=USER, AUTH_PASSWORD=PASSWORD)
    yield server
    server.stop()


def test_slow_and_idle_clients_do_not_starve_a_normal_pull(server):
    stop, opened, threads = threading.Event(), [], []
    kinds = [
        (trickle, (b"GET /health HTTP/1.1\r\nHost: t\r\n", b"X-Slow: 1\r\n")),
        (trickle, ((b"POST /api/orders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                   b"Content-Length: 100000\r\n\r\n["), b"{}, ")),
        (idle_keepalive, ()),
    ]
    for function, args in kinds:
        for _ in range(CONNECTIONS):
            thread = threading.Thread(target=function, args=(server.port, *args, stop, opened), daemon=True)
            thread.start()
            threads.append(thread)
    try:
        time.sleep(1.5)  # every slow client has connected and started
        assert len(opened) >= 2 * CONNECTIONS
        worst = 0.0
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            for path in ("/api/orders?limit=10", "/health"):
                started = time.monotonic()
                response, body = raw_get(server.port, path, basic_auth(USER, PASSWORD), timeout=5)
                worst = max(worst, time.monotonic() - started)
                assert response.status == 200, (path, body[:200])
            time.sleep(0.2)
        assert worst < 1.0, f"a normal request took {worst:.2f} s"
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)


def test_stopping_does_not_wait_for_heads_that_never_come(server):
    """Docker kills a container 10 s after SIGTERM; a head still trickling in gets the
    same last moment as a kept-alive connection, not its own 10 s."""
    stop, opened = threading.Event(), []
    threads = [threading.Thread(target=trickle, daemon=True,
                                args=(server.port, b"GET /health HTTP/1.1\r\nHost: t\r\n",
                                      b"X-Slow: 1\r\n", stop, opened)) for _ in range(20)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        started = time.monotonic()
        assert server.stop() == 0
        assert time.monotonic() - started < 5
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
