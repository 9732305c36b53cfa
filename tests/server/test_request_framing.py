"""A request body is taken whole or refused whole, whatever its framing (issue 16, point 1):
over real gunicorn, since the framing is the server's."""
import json
import socket

import pytest

from tests.support.databases import live_orders
from tests.support.servers import start_gunicorn

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("framing")
    url = f"sqlite:///{folder}/orders.sqlite3"
    server = start_gunicorn(url, folder, MAX_BODY_BYTES=str(LIMIT))
    server.database_url = url
    yield server
    server.stop()


def exchange(server, raw: bytes, close_after_sending=False) -> tuple[int, dict]:
    """Send raw bytes, read the answer to the end; return its status and JSON body."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(raw)
        if close_after_sending:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"application/json" in head.lower(), head
    return status, json.loads(body.split(b"\r\n", 1)[1] if b"chunked" in head.lower() else body)


def chunked(data: bytes, size: int = 4096) -> bytes:
    pieces = [data[i:i + size] for i in range(0, len(data), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


def batch_of_exactly(size: int, first_id: int) -> bytes:
    """A valid JSON array of orders exactly `size` bytes long."""
    orders, order_id = [], first_id
    while True:
        orders.append({"id": order_id, "Username": "u", "Orders": "o", "TotalSum": 1})
        text = json.dumps(orders).encode()
        if len(text) > size - 40:
            pad = size - len(text)
            orders[-1]["Orders"] = "o" * (1 + pad)
            text = json.dumps(orders).encode()
            assert len(text) == size
            return text
        order_id += 1


POST = (b"POST /api/orders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\n")


def written(server, order_id):
    return str(order_id) in live_orders(server.database_url)


def test_a_chunked_body_past_the_limit_is_413_even_if_its_first_part_is_valid_json(server):
    body = batch_of_exactly(LIMIT, 1_000_000) + b"garbage" * 2000
    status, error = exchange(server, POST + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(body))
    assert status == 413 and error["status"] == 413 and "MAX_BODY_BYTES" in error["message"]
    assert not written(server, 1_000_000)


def test_a_chunked_body_up_to_the_limit_is_written(server):
    body = batch_of_exactly(LIMIT, 2_000_000)
    status, answer = exchange(server, POST + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(body))
    assert status == 200 and answer["created"] == len(json.loads(body)) and written(server, 2_000_000)


def test_a_body_shorter_than_its_content_length_is_400_and_writes_nothing(server):
    order = json.dumps({"Username": "ann", "Orders": "o", "TotalSum": 1}).encode()
    for version in (b"1.1", b"1.0"):
        raw = (b"PUT /api/orders/3000000 HTTP/" + version + b"\r\nHost: t\r\nContent-Type: "
               b"application/json\r\nContent-Length: %d\r\n\r\n" % (len(order) + 500) + order)
        status, error = exchange(server, raw, close_after_sending=True)
        assert status == 400 and "Content-Length" in error["message"], version
    assert not written(server, 3_000_000)


def test_a_malformed_chunk_is_400_with_the_json_error(server):
    for bad in (b"zz\r\nabc\r\n0\r\n\r\n", b"3\r\nabcdef\r\n0\r\n\r\n"):
        status, error = exchange(server, POST + b"Transfer-Encoding: chunked\r\n\r\n" + bad)
        assert status == 400 and error["error"] == "bad_request"
    assert "Traceback" not in server.log()


def test_an_http_1_0_body_with_its_length_is_written(server):
    order = json.dumps({"Username": "ann", "Orders": "o", "TotalSum": 1}).encode()
    status, _ = exchange(server, b"PUT /api/orders/4000000 HTTP/1.0\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n" % len(order) + order)
    assert status == 201 and written(server, 4_000_000)
