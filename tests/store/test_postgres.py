"""PostgreSQL only: no lost change under concurrency, several instances, a database that is down."""
from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time

import psycopg
import pytest

from tests.support.apps import prepared_app
from service.store import Order, StoreRejected, open_store
from service.store import postgresql
from tests.support.databases import fresh_database, load_into
from tests.support.servers import free_port


@pytest.fixture
def pg_url(tmp_path):
    with fresh_database("postgresql", tmp_path) as url:
        yield url


def test_the_sequence_is_commit_ordered_even_when_transactions_interleave(pg_url, tmp_path):
    app = prepared_app({"DATABASE_URL": pg_url, "LOG_LEVEL": "ERROR"})
    app.extensions["store"].close()
    first = psycopg.connect(pg_url)
    try:
        first.execute("INSERT INTO orders VALUES (1, 'a', 'x', 1)")  # draws its change now
        second_done = threading.Event()

        def second():
            with psycopg.connect(pg_url, autocommit=True) as connection:
                connection.execute("INSERT INTO orders VALUES (2, 'b', 'x', 1)")
            second_done.set()

        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.5)
        assert not second_done.is_set()  # the second writer queues behind the open one
        with psycopg.connect(pg_url, autocommit=True) as reader:  # readers never queue
            assert reader.execute("SELECT count(*) FROM changes").fetchone()[0] == 0
        first.commit()
        thread.join(10)
    finally:
        first.close()
    with psycopg.connect(pg_url) as reader:
        assert reader.execute("SELECT order_id FROM changes ORDER BY seq").fetchall() == [(1,), (2,)]


@pytest.mark.slow
def test_a_database_that_is_down_gives_503_before_any_body_and_an_unhealthy_health(monkeypatch):
    monkeypatch.setattr("service.store.postgresql.POOL_TIMEOUT_S", 1.0)
    url = f"postgresql://nobody:nothing@127.0.0.1:{free_port()}/none"
    app = prepared_app({"DATABASE_URL": url, "LOG_LEVEL": "ERROR"})  # starts anyway
    client = app.test_client()
    try:
        for path in ("/health", "/api/orders", "/api/orders/1"):
            response = client.get(path)
            assert response.status_code == 503, path
            assert response.get_json()["message"] == "the database cannot be reached"
    finally:
        app.extensions["store"].close()


@pytest.mark.skipif(shutil.which("psql") is None, reason="the psql client is not installed")
def test_writes_from_psql_are_tracked(pg_url):
    any_store = open_store(pg_url)
    any_store.migrate()
    any_store.upsert_orders([Order(1, "ann", "Thinkpad", "10")])
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", pg_url, "-c",
                    "INSERT INTO orders VALUES (5, 'eve', 'Pixel', 7.25); UPDATE orders SET id = 6 WHERE id = 1;"],
                   check=True)
    stream = any_store.open_changes(0, None)
    entities = [entity for text, _ in stream.chunks() for entity in json.loads(b"[" + text + b"]")]
    stream.close()
    any_store.close()
    assert [(e["_id"], e.get("_deleted", False)) for e in entities] == [
        ("5", False), ("1", True), ("6", False)]
    assert entities[0]["_updated"] < entities[1]["_updated"] < entities[2]["_updated"]
    assert entities[0]["TotalSum"] == 7.25


@pytest.mark.slow
def test_a_slow_reader_outlasts_the_statement_timeout(pg_url, monkeypatch):
    """A full sync is one query that runs as long as the client reads: the statement
    timeout meant for other statements must not cut it (here 0.3 s against a reader
    that takes over a second for 20 MB, more than the sockets buffer)."""
    from service.store import postgresql
    load_into(pg_url, (Order(i, "ann", "x" * 1000, "1") for i in range(1, 20001)))
    monkeypatch.setattr(postgresql, "STATEMENT_TIMEOUT_MS", 300)
    store = postgresql.PostgresStore(pg_url)
    try:
        # the limit applies to other statements
        with store.pool.connection() as connection, pytest.raises(psycopg.errors.QueryCanceled):
            connection.execute("SELECT pg_sleep(1)")
        stream = store.open_changes(0, None)
        try:
            served = 0
            for _, count in stream.chunks():
                served += count
                time.sleep(0.15)  # ten chunks: over a second in all
        finally:
            stream.close()
        assert served == 20000
    finally:
        store.close()


def frontend_round_trips(trace: str) -> list[str]:
    """The client's messages that wait for an answer, from a libpq protocol trace: a simple
    Query (with its text), or the Sync that ends an extended query."""
    messages = [line.split("\t") for line in trace.splitlines() if line.startswith("F\t")]
    return [fields[2] + fields[3] if fields[2] == "Query" else fields[2]
            for fields in messages if fields[2] in ("Query", "Sync")]


def traced_round_trips(store, trace_path, read) -> list[str]:
    """Run `read` with the store's only connection traced; return its round trips."""
    with open(trace_path, "w") as trace:
        with store.pool.connection() as connection:
            connection.pgconn.trace(trace.fileno())
            connection.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
        read()
        with store.pool.connection() as connection:
            connection.pgconn.untrace()
    return frontend_round_trips(trace_path.read_text())


def read_whole(store, since, limit) -> list[int]:
    stream = store.open_changes(since, limit)
    try:
        return [count for _, count in stream.chunks()]
    finally:
        stream.close()


def test_pulls_take_few_round_trips_and_leave_the_connection_transactional(pg_url, tmp_path):
    """A pull that fits the first read is a single statement, its own snapshot: one round
    trip. A longer stream opens its read-only transaction and lifts the statement timeout
    in one message. Either way the connection goes back to the pool as it came, so a
    write that borrows it next is still all or nothing."""
    from service.store.postgresql import IDENTITY_SQL, STREAM_TIMEOUT_MS, PostgresStore
    store = PostgresStore(pg_url, max_connections=1)  # the pulls and the write share it
    try:
        store.migrate()
        store.bulk_load(Order(i, "ann", "x", "1") for i in range(1, 301))
        counts = {}
        small = traced_round_trips(store, tmp_path / "small.trace",
                                   lambda: counts.update(small=read_whole(store, 200, 10)))
        assert small == ["Sync"]  # the SELECT alone
        stream = traced_round_trips(store, tmp_path / "stream.trace",
                                    lambda: counts.update(stream=read_whole(store, 0, None)))
        assert counts == {"small": [10], "stream": [100, 200]}
        # The identity (X-Dataset-* headers) rides in the first message: no round trip more.
        assert stream == [
            ('Query "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; '
            f'SET LOCAL statement_timeout = {STREAM_TIMEOUT_MS}; {IDENTITY_SQL}"'),
            "Sync", 'Query "ROLLBACK"']
        with store.pool.connection() as connection:
            assert not connection.autocommit and not connection.read_only
            assert connection.execute("SHOW statement_timeout").fetchone() == ("30s",)
        with pytest.raises(StoreRejected):  # the second order breaks a constraint
            store.upsert_orders([Order(5, "bob", "x", "1"), Order(6, "bob", "x", "-1")])
        with store.pool.connection() as connection:
            assert connection.execute("SELECT username FROM orders WHERE id = 5").fetchone() == ("ann",)
    finally:
        store.close()


def test_migrating_a_version_1_database_replaces_its_row_trigger(pg_url):
    """Version 1 recorded changes with a row trigger named orders_track. Left in place
    beside the statement triggers, every write would be recorded twice."""
    store = open_store(pg_url)
    try:
        store.migrate()
        with psycopg.connect(pg_url, autocommit=True) as connection:
            connection.execute("CREATE FUNCTION orders_track() RETURNS trigger LANGUAGE plpgsql "
                               "AS $$ BEGIN PERFORM nextval('change_seq'); RETURN NULL; END $$")
            connection.execute("CREATE TRIGGER orders_track AFTER INSERT OR UPDATE OR DELETE "
                               "ON orders FOR EACH ROW EXECUTE FUNCTION orders_track()")
            connection.execute("UPDATE schema_version SET version = 1")
        store.migrate()
        store.upsert_orders([Order(1, "ann", "x", "1"), Order(2, "bob", "x", "2")])
        with psycopg.connect(pg_url) as connection:
            triggers = connection.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = "
                                          "'orders'::regclass ORDER BY tgname").fetchall()
            assert triggers == [("orders_track_delete",), ("orders_track_insert",),
                                ("orders_track_truncate",), ("orders_track_update",)]
            assert connection.execute("SELECT order_id FROM changes ORDER BY seq").fetchall() \
                == [(1,), (2,)]  # each write recorded once
            assert connection.execute("SELECT version FROM schema_version").fetchone() == (postgresql.SCHEMA_VERSION,)
    finally:
        store.close()


def test_postgresql_refuses_invalid_utf8_itself(pg_url):
    """What SQLite must serve replaced (tests/store/test_store.py), PostgreSQL never stores."""
    store = open_store(pg_url)
    store.migrate()
    store.close()
    with psycopg.connect(pg_url, autocommit=True) as connection, \
            pytest.raises(psycopg.Error, match="invalid byte sequence"):
        connection.execute("INSERT INTO orders VALUES (5006, convert_from('\\xff'::bytea, 'UTF8'), 'o', 1)")


def test_migrating_a_current_schema_takes_no_ddl_and_restores_a_lost_identity(pg_url):
    """At every start: no DDL while the tracking is intact (its locks would queue behind
    running writers); a dropped trigger is the one thing put back (tests/store/test_verify.py)."""
    triggers = ("SELECT tgname, oid FROM pg_trigger WHERE tgrelid = 'orders'::regclass "
                "AND NOT tgisinternal ORDER BY tgname")
    store = open_store(pg_url)
    try:
        store.migrate()
        with psycopg.connect(pg_url, autocommit=True) as connection:
            before = connection.execute(triggers).fetchall()
            connection.execute("DELETE FROM store_identity")
        store.migrate()
        with psycopg.connect(pg_url, autocommit=True) as connection:
            assert connection.execute("SELECT count(*) FROM store_identity").fetchone() == (1,)
            assert connection.execute(triggers).fetchall() == before  # not created anew
            connection.execute("DROP TRIGGER orders_track_delete ON orders")
        store.migrate()
        with psycopg.connect(pg_url) as connection:
            assert [name for name, _ in connection.execute(triggers).fetchall()] == [name for name, _ in before]
    finally:
        store.close()


@pytest.mark.slow
def test_a_throwaway_cluster_listens_on_loopback_only_and_leaves_nothing_behind():
    """What `make test` starts where the server programs are installed (also as root)."""
    from tests.support.postgres_cluster import ThrowawayCluster, server_programs
    programs = server_programs()
    if programs is None:
        pytest.skip("the PostgreSQL server programs are not installed")
    cluster = ThrowawayCluster(programs)
    try:
        with psycopg.connect(cluster.url) as connection:
            listen, fsync = (connection.execute(f"SHOW {name}").fetchone()[0]
                             for name in ("listen_addresses", "fsync"))
        assert (listen, fsync) == ("127.0.0.1", "off")
    finally:
        cluster.stop()
    assert not cluster.folder.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(cluster.url, connect_timeout=2)


def test_a_write_that_loses_a_deadlock_with_another_program_is_run_again(pg_url):
    """Another program locks order 2000 and then order 1, while the service writes 1..2000:
    PostgreSQL aborts the service's transaction, which waited first. The service runs it
    again, and the request succeeds, written whole."""
    store = open_store(pg_url)
    store.migrate()
    store.upsert_orders([Order(i, "before", "x", "1") for i in range(1, 2001)])
    outcome: list = []
    with psycopg.connect(pg_url) as other:
        other.execute("UPDATE orders SET username = 'other' WHERE id = 2000")
        writer = threading.Thread(target=lambda: outcome.append(
            store.upsert_orders([Order(i, "service", "x", "1") for i in range(1, 2001)])))
        writer.start()
        time.sleep(0.5)  # the service holds 1..1999 and waits for 2000
        other.execute("UPDATE orders SET username = 'other' WHERE id = 1")  # waits: a deadlock
        other.commit()
    writer.join(30)
    assert outcome == [(0, 2000)]
    assert {json.loads(store.get_order(i))["Username"] for i in (1, 1000, 2000)} == {"service"}
    store.close()


@pytest.mark.parametrize("threads, connections", [(1, 2), (8, 9), (16, 17), (256, 32)])
def test_the_pool_follows_the_thread_count_up_to_its_cap(pg_url, threads, connections):
    """A thread per connection, one more for the verification, never more than MAX_POOL
    (issue 24: beyond a fixed 8, streams waited 5 s and got 503)."""
    any_store = open_store(pg_url, threads)
    try:
        assert any_store.pool.max_size == connections
    finally:
        any_store.close()
