"""Requests gunicorn refuses before the app sees them answer in the service's JSON error
shape (issue 16, point 6), over real gunicorn."""
import json
import socket

import pytest

from service.gunicorn_worker import json_error_page
from tests.support.servers import start_gunicorn


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("server-errors")
    server = start_gunicorn(f"sqlite:///{folder}/orders.sqlite3", folder)
    yield server
    server.stop()


def exchange(server, raw: bytes) -> tuple[int, bytes, dict]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(raw)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, json.loads(body)


@pytest.mark.parametrize("raw, status", [
    (b"GARBAGE\r\n\r\n", 400),                                              # bad request line
    (b"GET /" + b"x" * 5000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),       # URI too long
    (b"GET / HTTP/1.1\r\nHost: t\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(120)) + b"\r\n", 431),
    (b"POST /api/orders HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 400),  # unknown coding
    (b"GET / HTTP/9.9\r\nHost: t\r\n\r\n", 400),                            # bad version
])
def test_a_request_gunicorn_refuses_gets_the_json_error_shape(server, raw, status):
    answered, head, body = exchange(server, raw)
    assert answered == status and b"content-type: application/json" in head.lower()
    assert body["status"] == status and body["error"] and body["message"]
    assert "<" not in body["message"]


def test_an_unexpected_page_is_passed_through_unchanged():
    assert json_error_page(b"HTTP/1.1 200 OK\r\n\r\nhi") == b"HTTP/1.1 200 OK\r\n\r\nhi"
