"""PostgreSQL under gunicorn: writers held open never make a pipe skip a change, and
several instances on one database serve the same feed."""
from __future__ import annotations

import json
import threading
import time

import psycopg
import pytest

from tests.sesam_emulator import Pipe, PipeConfig, http_transport
from tests.support.databases import fresh_database, live_orders
from tests.support.servers import raw_get, start_gunicorn
from tests.support.targets import http_target, pipe_orders


@pytest.fixture
def pg_url(tmp_path):
    with fresh_database("postgresql", tmp_path) as url:
        yield url


def order(order_id: int, name: str) -> dict:
    return {"id": order_id, "Username": name, "Orders": "Thinkpad", "TotalSum": 10}


def test_writers_held_open_never_make_the_pipe_skip_a_change(pg_url, tmp_path):
    """A transaction that took an early change and commits late must not be skipped by a
    reader that already continued past later changes."""
    server = start_gunicorn(pg_url, tmp_path, WEB_CONCURRENCY="2", THREADS="8")
    api = http_target("gunicorn", f"{server.url}/api/orders", None, None, writable=True)
    pipe = Pipe(http_transport(f"{server.url}/"), PipeConfig(page_size=2))
    request_cleanup = None
    try:
        for order_id in range(1, 6):
            assert api.write("PUT", f"/api/orders/{order_id}", order(order_id, "before")) == 201
        pipe.run()
        # Writer A opens a transaction, changes two orders and holds it open.
        held = psycopg.connect(pg_url)
        request_cleanup = held.close
        held.execute("UPDATE orders SET username = 'held' WHERE id IN (1, 2)")
        held.execute("INSERT INTO orders VALUES (100, 'held', 'x', 1)")
        # Meanwhile other writers (through the API and plain SQL) try to change orders.
        results = []
        writers = [threading.Thread(target=lambda i=i: results.append(
            api.write("PUT", f"/api/orders/{i}", order(i, "later")))) for i in (3, 4, 200)]

        def sql_writer():
            with psycopg.connect(pg_url, autocommit=True) as connection:
                connection.execute("DELETE FROM orders WHERE id = 5")
        writers.append(threading.Thread(target=sql_writer))
        for writer in writers:
            writer.start()
        # The pipe keeps pulling incrementally, with paging, while A is still open.
        runs = 0
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            pipe.run()
            runs += 1
        assert pipe_orders(pipe)["1"][0] == "before"  # A's changes are not visible yet
        held.commit()
        held.close()
        for writer in writers:
            writer.join(30)
        assert sorted(results) == [200, 200, 201]
        pipe.run()
    finally:
        if request_cleanup:
            request_cleanup()  # never leave a transaction open: the schema could not be dropped
        server.stop()
    assert runs >= 3
    assert pipe_orders(pipe) == live_orders(pg_url)
    assert pipe_orders(pipe)["1"][0] == "held" and "100" in pipe.state.live() and "5" not in pipe.state.live()


def test_several_instances_on_one_database_serve_identical_results(pg_url, tmp_path):
    servers = [start_gunicorn(pg_url, tmp_path, LOAD_SAMPLE_ORDERS="true") for _ in range(2)]
    try:
        api = http_target("gunicorn", f"{servers[0].url}/api/orders", None, None, writable=True)
        for order_id in range(10, 40):
            api.write("PUT", f"/api/orders/{order_id}", order(order_id, "x"))
        api.write("DELETE", "/api/orders/11", None)
        bodies = [raw_get(server.port, "/api/orders")[1] for server in servers]
        pages = [raw_get(server.port, "/api/orders?since=5&limit=7")[1] for server in servers]
    finally:
        for server in servers:
            server.stop()
    assert bodies[0] == bodies[1] and pages[0] == pages[1]
    assert len(json.loads(bodies[0])) == 33  # 3 samples, loaded once, and 30 more
