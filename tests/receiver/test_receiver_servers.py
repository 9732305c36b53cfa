"""The receiver under gunicorn: several instances on one database, and a crash in the
middle of the sweep that ends a full sync."""
from __future__ import annotations

import itertools
import json
import threading
import time

import pytest

from service.store import Order
from tests.sesam_emulator import Pipe, http_transport
from tests.sesam_emulator.sink import Sink, SinkConfig, SinkFailed, http_poster
from tests.support.databases import live_orders, load_into, plain_sql, wait_until_delivered
from tests.support.servers import kill_tree, start_gunicorn

pytestmark = pytest.mark.slow


def orders(ids):
    return (Order(i, f"user{i}", "Thinkpad", "12.10") for i in ids)


def entities(ids):
    return [{"_id": str(i), "id": i, "Username": f"user{i}", "Orders": "Thinkpad",
             "TotalSum": "~f12.10"} for i in ids]


def test_two_instances_take_alternate_requests_of_one_sequence(database_url, backend, tmp_path):
    if backend != "postgresql":
        pytest.skip("several instances share a database on PostgreSQL")
    load_into(database_url, orders(range(1, 306)))
    servers = [start_gunicorn(database_url, tmp_path, WEB_CONCURRENCY="1") for _ in range(2)]
    try:
        Pipe(http_transport(f"{servers[0].url}/")).run()  # Sesam has seen the store
        wait_until_delivered(database_url)
        posters = itertools.cycle([http_poster(f"{server.url}/") for server in servers])
        used = []

        def alternate(path, params, body):
            poster = next(posters)
            used.append(poster)
            return poster(path, params, body)
        sent = entities(range(1, 301))
        sent[7]["Username"] = "changed-in-sesam"
        result = Sink(alternate, SinkConfig(batch_size=10)).run(sent, full=True)
        assert result.requests == 31 and len(set(map(id, used))) == 2
        assert result.last_reply["swept"] == 5
        live = live_orders(database_url)
        assert sorted(map(int, live)) == list(range(1, 301)) and live["8"][0] == "changed-in-sesam"
        for server in servers:  # both answer for the one sequence
            health = json.loads(http_transport(f"{server.url}/")("/health", {}).body)
            assert health["receiver"]["full"]["status"] == "ended"
            assert health["receiver"]["full"]["requests"] == 31
    finally:
        for server in servers:
            server.stop()


def test_kill_9_during_the_sweep_deletes_all_or_nothing(database_url, backend, tmp_path):
    load_into(database_url, orders(range(1, 41)))
    server = start_gunicorn(database_url, tmp_path, WEB_CONCURRENCY="1")
    with plain_sql(database_url) as blocker, plain_sql(database_url) as observer:
        try:
            Pipe(http_transport(f"{server.url}/")).run()
            wait_until_delivered(database_url)
            post = http_poster(f"{server.url}/")
            sequence = Sink(post, SinkConfig(batch_size=10))
            # The sequence sends 1..30; its last (empty) request sweeps 31..40 and is
            # held inside the sweep's transaction: on PostgreSQL by a row lock another
            # program holds, on SQLite by a slow trigger of another program's.
            hold_the_sweep(blocker, backend)
            last: dict = {}

            def run():
                try:
                    last["result"] = sequence.run(entities(range(1, 31)), full=True)
                except SinkFailed as error:  # the connection dies with the server
                    last["error"] = error
            pusher = threading.Thread(target=run)
            pusher.start()
            wait_inside_the_sweep(observer, backend, pusher)
            kill_tree(server.process.pid)
            pusher.join(30)
            server.process.wait(10)
        finally:
            release_the_sweep(blocker, backend)
            if server.process.poll() is None:  # the test failed before the kill
                kill_tree(server.process.pid)
    assert "result" not in last
    time.sleep(0.5)  # PostgreSQL ends the dead client's transaction
    assert sorted(map(int, live_orders(database_url))) == list(range(1, 41))  # none of it
    with plain_sql(database_url) as connection:
        assert connection.execute("SELECT count(*) FROM push_state").fetchone()[0] == 1
    server = start_gunicorn(database_url, tmp_path, WEB_CONCURRENCY="1")
    try:  # the next full sync starts afresh and does all of it
        result = Sink(http_poster(f"{server.url}/"), SinkConfig(batch_size=10)).run(
            entities(range(1, 31)), full=True)
        assert result.last_reply["swept"] == 10
        assert sorted(map(int, live_orders(database_url))) == list(range(1, 31))
    finally:
        server.stop()


def hold_the_sweep(connection, backend: str) -> None:
    if backend == "postgresql":
        connection.execute("BEGIN")
        connection.execute("SELECT id FROM orders WHERE id = 35 FOR UPDATE")
    else:  # about a second of work for each order the sweep deletes
        connection.execute("""CREATE TRIGGER slow_delete AFTER DELETE ON orders BEGIN
            SELECT count(*) FROM (WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1
            FROM n WHERE x < 3000000) SELECT x FROM n); END""")


def wait_inside_the_sweep(connection, backend: str, pusher: threading.Thread) -> None:
    """`connection` is not the one holding the sweep (PostgreSQL's activity view is read
    once per transaction)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert pusher.is_alive(), "the sequence ended before the sweep could be held"
        if backend == "postgresql":
            waiting = connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE 'DELETE FROM orders WHERE id IN (SELECT o.id%%'").fetchone()[0]
            if waiting:
                return
        elif sent_everything(connection):
            time.sleep(1.5)  # the last request is in its sweep, a row or two deleted
            return
        time.sleep(0.05)
    raise AssertionError("the sweep never started")


def sent_everything(connection) -> bool:
    """Whether the sequence's 30 orders are taken (SQLite: a reader never waits)."""
    state = connection.execute("SELECT state FROM push_state WHERE kind = 'full'").fetchone()
    return bool(state) and json.loads(state[0])["entities"] == 30


def release_the_sweep(connection, backend: str) -> None:
    if backend == "postgresql":
        connection.execute("ROLLBACK")
    else:
        connection.execute("DROP TRIGGER IF EXISTS slow_delete")
