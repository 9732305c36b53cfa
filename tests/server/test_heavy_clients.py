"""Clients that hold valid credentials and are slow or heavy cannot take the service from
others (issue 24, point 1): bodies that stall, pulls that are never read, deadlines that
cut them off, and the cap on long pulls, on SQLite with Sesam's 8 threads and on
PostgreSQL with 16. Loopback only, bounded in time."""
from __future__ import annotations

import json
import threading
import time

import pytest

from tests.support.databases import fresh_database, load_orders
from tests.support.heavy_clients import (answer, connect, head, slowest_answer, stalled_body,
                                        unread_pull)
from tests.support.servers import basic_auth, raw_get, start_gunicorn

USER, PASSWORD = "sesam", "heavy-client-test"
AUTH = basic_auth(USER, PASSWORD)
HEAD = head(AUTH)


@pytest.fixture
def server(tmp_path):
    url = load_orders(f"sqlite:///{tmp_path}/orders.sqlite3", 60_000)
    server = start_gunicorn(url, tmp_path, AUTH_USERNAME=USER, AUTH_PASSWORD=PASSWORD,
                            WEB_CONCURRENCY="1", THREADS="8", CLIENT_TIMEOUT_S="4")
    yield server
    server.stop()


def test_stalled_bodies_and_unread_pulls_do_not_hold_health_or_a_small_pull(server):
    clients = [stalled_body(server.port, AUTH) for _ in range(8)] + \
              [unread_pull(server.port, AUTH) for _ in range(8)]
    try:
        time.sleep(0.5)  # every one of them has reached the server
        worst = slowest_answer(server.port, AUTH, 2.5)
        assert worst < 2.0, f"/health or a small pull took {worst:.2f} s"
        # Those that found no place were told to come back at once.
        answers = [answer(sock) for sock in clients]
    finally:
        for sock in clients:
            sock.close()
    statuses = [a.split(b" ", 2)[1] for a in answers if a.startswith(b"HTTP/1.1 ")]
    assert b"503" in statuses and all(b"Retry-After" in a for a in answers if b" 503 " in a[:20])
    # The bodies that had a place stalled past CLIENT_TIMEOUT_S: cut off with a 408.
    assert statuses.count(b"408") >= 1, statuses
    log = server.log()
    assert "stream aborted" in log  # the unread pulls that had a place were cut off and say so
    assert "Traceback" not in log and "Socket error" not in log


def test_a_trickled_body_is_cut_off_at_the_deadline_however_it_trickles(server):
    sock = connect(server.port)
    sock.sendall((f"POST /api/orders HTTP/1.1\r\n{HEAD}\r\nContent-Type: application/json\r\n"
                  "Content-Length: 1000\r\n\r\n[").encode())
    started = time.monotonic()
    try:
        for _ in range(12):  # one byte a second: never a stall, but never done
            time.sleep(1)
            sock.sendall(b" ")
    except OSError:
        pass
    reply = answer(sock)
    sock.close()
    assert reply.startswith(b"HTTP/1.1 408 "), reply[:300]
    assert b"CLIENT_TIMEOUT_S" in reply and time.monotonic() - started < 10


def test_long_pulls_beyond_the_cap_get_503_with_retry_after(server):
    clients = [unread_pull(server.port, AUTH) for _ in range(6)]
    try:
        time.sleep(0.5)
        response, body = raw_get(server.port, "/api/orders", AUTH, timeout=10)
        short, _ = raw_get(server.port, "/api/orders?limit=5", AUTH, timeout=10)
    finally:
        for sock in clients:
            sock.close()
    assert response.status == 503 and response.headers["Retry-After"] == "5"
    assert json.loads(body)["error"] == "busy" and short.status == 200


def test_twelve_slow_readers_are_all_served_with_sixteen_threads(tmp_path):
    with fresh_database("postgresql", tmp_path) as pg_url:
        twelve_slow_readers(load_orders(pg_url, 30_000), tmp_path)


def twelve_slow_readers(url: str, tmp_path) -> None:
    server = start_gunicorn(url, tmp_path, AUTH_USERNAME=USER, AUTH_PASSWORD=PASSWORD,
                            WEB_CONCURRENCY="1", THREADS="16")
    results: list[int] = []

    def slow_reader() -> None:
        sock = connect(server.port, receive_buffer=16384)
        sock.sendall(f"GET /api/orders HTTP/1.1\r\n{HEAD}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(16384):
            data += chunk
            time.sleep(0.002)  # a slow network: about 8 MB/s
        sock.close()
        status_line = data.partition(b"\r\n")[0]
        results.append(int(status_line.split(b" ", 2)[1]) if status_line else 0)

    readers = [threading.Thread(target=slow_reader) for _ in range(12)]
    try:
        for reader in readers:
            reader.start()
        time.sleep(0.5)
        worst = slowest_answer(server.port, AUTH, 2.0)
        for reader in readers:
            reader.join(120)
    finally:
        server.stop()
    assert results == [200] * 12, results  # the cap (16 - 4) leaves room for all of them
    assert worst < 2.0, f"/health or a small pull took {worst:.2f} s"
