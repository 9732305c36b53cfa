"""The real service under gunicorn, over real HTTP: streaming, the mid-stream fault, SIGTERM."""
import http.client
import json
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from service.store.base import CHUNK_ROWS, FIRST_CHUNK_ROWS, MAX_UPDATED
from tests.support.databases import load_orders, plain_sql
from tests.support.servers import raw_get, start_gunicorn

ROWS = 3 * CHUNK_ROWS + 17


@pytest.fixture
def loaded_url(database_url):
    return load_orders(database_url, ROWS)


def test_a_full_pull_over_http_is_streamed_and_complete(loaded_url, tmp_path):
    server = start_gunicorn(loaded_url, tmp_path)
    try:
        response, body = raw_get(server.port, "/api/orders")
        assert response.status == 200
        assert response.getheader("Transfer-Encoding") == "chunked"  # streamed, not built whole
        entities = json.loads(body)
        assert [e["_id"] for e in entities] == [str(i) for i in range(1, ROWS + 1)]
        full = [e["_updated"] for e in entities]
        assert full == sorted(set(full))
        assert response.getheader("X-Dataset-Max-Updated") == str(full[-1])
        response, body = raw_get(server.port, f"/api/orders?since={full[-6]}&limit=2")
        assert [e["_updated"] for e in json.loads(body)] == full[-5:-3]
        # An answer read whole before the headers go out is sent in one piece.
        assert response.getheader("Content-Length") == str(len(body))
        response, body = raw_get(server.port, "/api/orders?limit=abc")
        assert response.status == 400 and json.loads(body)["error"] == "bad_request"
    finally:
        assert server.stop() == 0
    log = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    # The full pull's line: written when its response closes, which may come after the
    # next request's line (another connection), so found by what it asked, not by order.
    [full_pull] = [line for line in log if line.get("path") == "/api/orders"
                   and line["status"] == 200 and line.get("limit") is None]
    assert full_pull["entities"] == ROWS and full_pull["complete"] is True


def test_a_fault_mid_stream_aborts_without_the_closing_bracket(loaded_url, tmp_path):
    server = start_gunicorn(loaded_url, tmp_path, app="tests.support.faulty_wsgi:app", FAIL_AFTER_CHUNKS="1")
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        connection.request("GET", "/api/orders")
        response = connection.getresponse()
        assert response.status == 200  # the headers were already sent when the fault hit
        with pytest.raises(http.client.IncompleteRead) as error:
            response.read()
        partial = error.value.partial
        assert partial.startswith(b"[") and not partial.rstrip().endswith(b"]")
        with pytest.raises(ValueError):
            json.loads(partial)
        # The server survives: a pull that ends before the fault point is complete.
        with plain_sql(loaded_url) as connection:
            eleventh_last = connection.execute(
                "SELECT seq FROM changes ORDER BY seq DESC LIMIT 1 OFFSET 10").fetchone()[0]
        response, body = raw_get(server.port, f"/api/orders?since={eleventh_last}")
        assert response.status == 200 and len(json.loads(body)) == 10  # one chunk: no fault
    finally:
        server.stop()
    assert "request: stream aborted" in server.log()


def test_sigterm_lets_a_running_stream_finish(loaded_url, tmp_path):
    server = start_gunicorn(loaded_url, tmp_path)
    result = {}

    def slow_reader():
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        connection.request("GET", "/api/orders")
        response = connection.getresponse()
        first = response.read(10)
        time.sleep(1.0)  # SIGTERM arrives while the body is still being read
        result["body"] = first + response.read()

    reader = threading.Thread(target=slow_reader)
    reader.start()
    time.sleep(0.4)
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    reader.join(30)
    assert server.process.wait(30) == 0
    assert time.monotonic() - started < 15
    assert len(json.loads(result["body"])) == ROWS


# Native libraries that only the app loads: Flask (through markupsafe) and each driver.
APP_LIBRARIES = re.compile(r"markupsafe/_speedups|_sqlite3|libsqlite3|_psycopg|libpq")


def loaded_app_libraries(pid: int) -> set[str]:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {line.split()[-1] for line in maps.splitlines() if APP_LIBRARIES.search(line)}


def test_a_new_database_is_prepared_once_and_the_master_stays_lean(database_url, tmp_path):
    """Two workers starting on a database that does not exist yet: no error, the samples
    loaded once. The master, which only supervises, has not loaded Flask or a driver (it
    was then 34-50 MB, larger than a worker)."""
    from tests.support.memory import process_tree
    server = start_gunicorn(database_url, tmp_path, LOAD_SAMPLE_ORDERS="true")
    try:
        _response, body = raw_get(server.port, "/api/orders")
        assert [e["_id"] for e in json.loads(body)] == ["1", "2", "3"]
        master = server.process.pid
        # The worker that answered has loaded the app; the other may not be forked yet, or
        # may still be booting.
        deadline = time.monotonic() + 20
        while len(workers := [pid for pid in process_tree(master) if pid != master]) < 2:
            assert time.monotonic() < deadline, f"only {len(workers)} worker(s) started"
            time.sleep(0.1)
        assert len(workers) == 2
        while not all(loaded_app_libraries(pid) for pid in workers):
            assert time.monotonic() < deadline, "a worker never loaded the app"
            time.sleep(0.1)
        assert loaded_app_libraries(master) == set()
    finally:
        assert server.stop() == 0
    log = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    problems = [line for line in log if line["level"] in ("WARNING", "ERROR", "CRITICAL")
                and "UNPROTECTED" not in line["message"]]
    assert problems == []
    assert sum("loaded the sample orders" in line["message"] for line in log) == 1


def test_the_headers_reach_a_client_over_real_http_on_both_paths(database_url, tmp_path):
    server = start_gunicorn(load_orders(database_url, 3 * FIRST_CHUNK_ROWS), tmp_path)
    try:
        streamed, body = raw_get(server.port, "/api/orders")
        whole, _ = raw_get(server.port, "/api/orders?limit=3")
        ahead, error = raw_get(server.port, f"/api/orders?since={MAX_UPDATED}")
    finally:
        server.stop()
    assert streamed.getheader("Transfer-Encoding") == "chunked" and whole.getheader("Content-Length")
    last = json.loads(body)[-1]["_updated"]
    for response in (streamed, whole, ahead):
        assert response.getheader("X-Dataset-Max-Updated") == str(last)
        assert response.getheader("X-Dataset-Generation") == streamed.getheader("X-Dataset-Generation")
    assert ahead.status == 409 and json.loads(error)["max_updated"] == last


def test_a_store_unavailable_at_start_is_prepared_once_it_is_back(tmp_path):
    """The master prepares the store once per start; while the database cannot be opened
    the workers answer 503, and the master tries again until it can: no restart needed."""
    blocker = tmp_path / "data"
    blocker.write_text("a file where the database's folder belongs")
    threading.Timer(2.0, blocker.unlink).start()
    server = start_gunicorn(f"sqlite:///{blocker}/orders.sqlite3", tmp_path,
                            LOAD_SAMPLE_ORDERS="true")  # returns once /health is 200
    try:
        _response, body = raw_get(server.port, "/api/orders")
    finally:
        assert server.stop() == 0
    assert [e["_id"] for e in json.loads(body)] == ["1", "2", "3"]
    log = server.log()
    assert "could not prepare the store: the database's folder cannot be created" in log
    assert log.count("the store is prepared") == 1
