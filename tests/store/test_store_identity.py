"""A pipe never silently misses changes when the store is recreated or restored: the
store's identity, `_updated` from the clock, the X-Dataset-* headers, `since` ahead of
the store, and the restore command (issue 13)."""
import json
import shutil
import subprocess
import sys
import time
import uuid

import psycopg
import pytest

from service.store import Order, StoreUnavailable, open_store
from service.store import sqlite
from service.store.base import FIRST_CHUNK_ROWS, MAX_UPDATED
from tests.support.databases import fresh_database, plain_sql
from tests.sesam_emulator import Pipe, PipeConfig, RunFailed
from tests.support.servers import ROOT
from tests.support.targets import flask_target

GENERATION = "x-dataset-generation"
MAX = "x-dataset-max-updated"


def orders(first, last, name="ann"):
    return [Order(i, name, "Thinkpad", "10") for i in range(first, last + 1)]


def pull(client, query=""):
    response = client.get(f"/api/orders{query}")
    try:
        return response, json.loads(response.get_data())
    finally:
        response.close()


def pipe_on(app, **config):
    return Pipe(flask_target(app.test_client(), None, None).transport,
                PipeConfig(path="/api/orders", **config))


def test_a_store_gets_one_generation_when_its_schema_is_created(make_app, database_url):
    client = make_app().test_client()
    generation = pull(client)[0].headers["X-Dataset-Generation"]
    assert str(uuid.UUID(generation)) == generation
    with plain_sql(database_url) as connection:
        assert connection.execute("SELECT generation FROM store_identity").fetchall() == [(generation,)]
    again = make_app().test_client()  # a restart migrates again: the same store
    assert pull(again)[0].headers["X-Dataset-Generation"] == generation


def test_a_store_created_anew_has_another_generation_and_higher_values(backend, tmp_path):
    served = {}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        with fresh_database(backend, tmp_path / name) as url:
            store = open_store(url)
            try:
                store.migrate()
                store.upsert_orders(orders(1, 3))
                stream = store.open_changes(0, None)
                served[name] = (stream.identity.generation,
                                [e["_updated"] for text, _ in stream.chunks()
                                 for e in json.loads(b"[" + text + b"]")])
                stream.close()
            finally:
                store.close()
    assert served["a"][0] != served["b"][0]
    assert max(served["a"][1]) < min(served["b"][1])  # B can never match A's offsets


def test_updated_values_are_the_clock_in_microseconds_below_2_to_the_53(any_store):
    before = int(time.time() * 1_000_000)
    any_store.upsert_orders(orders(1, 500))
    after = int(time.time() * 1_000_000)
    stream = any_store.open_changes(0, None)
    values = [e["_updated"] for text, _ in stream.chunks() for e in json.loads(b"[" + text + b"]")]
    stream.close()
    assert values == sorted(set(values)) and len(values) == 500
    # SQLite's clock has milliseconds; a statement's rows count on from its first value.
    assert before - 1000 <= values[0] and values[-1] <= after + 1000 + 500
    assert values[-1] < MAX_UPDATED


def test_the_database_refuses_a_value_past_2_to_the_53_and_writes_nothing(any_store, database_url, backend):
    any_store.upsert_orders(orders(1, 1))
    with plain_sql(database_url) as connection:
        if backend == "sqlite":
            connection.execute("UPDATE change_counter SET value = ?", (MAX_UPDATED,))
        else:
            connection.execute("SELECT setval('change_seq', ?)", (MAX_UPDATED,))
        with pytest.raises(Exception, match="2\\*\\*53|maximum value"):
            connection.execute("INSERT INTO orders VALUES (7, 'a', 'b', '1')")  # another program
    with pytest.raises(StoreUnavailable, match="2\\*\\*53"):
        any_store.upsert_orders(orders(2, 3))
    assert any_store.get_order(2) is None and any_store.get_order(7) is None


@pytest.mark.parametrize("query, streamed", [
    ("", True),                            # a full pull, longer than the first read
    (f"?limit={FIRST_CHUNK_ROWS}", False),  # a page that fits the first read: one piece
    ("?limit=150", True),                  # a page longer than the first read: streamed
])
def test_every_pull_carries_the_headers_and_a_full_pull_ends_on_max_updated(make_app, query, streamed):
    app = make_app()
    app.extensions["store"].bulk_load(orders(1, 3 * FIRST_CHUNK_ROWS))
    client = app.test_client()
    response, _body = pull(client, query)
    assert ("Content-Length" not in response.headers) is streamed
    _, full = pull(client)
    assert response.headers["X-Dataset-Max-Updated"] == json.dumps(full[-1]["_updated"])
    assert response.headers["X-Dataset-Generation"]
    assert "X-Dataset-Restore-Uuid" not in response.headers  # never restored
    # incremental and empty pulls carry them too
    for since in (full[-5]["_updated"], full[-1]["_updated"]):
        response, _ = pull(client, f"?since={since}&limit=2")
        assert response.headers["X-Dataset-Max-Updated"] == str(full[-1]["_updated"])


def test_an_empty_store_has_a_generation_and_no_max_updated(client):
    response, body = pull(client)
    assert body == [] and response.headers["X-Dataset-Generation"]
    assert "X-Dataset-Max-Updated" not in response.headers


@pytest.mark.parametrize("ahead", [1, 2 ** 63 - 1 - 10 ** 16])
def test_a_since_ahead_of_the_store_is_409_naming_both_values(make_app, capsys, ahead):
    app = make_app()
    app.extensions["store"].upsert_orders(orders(1, 2))
    client = app.test_client()
    _, full = pull(client)
    highest = full[-1]["_updated"]
    for limit in ("", "&limit=5"):  # the one-statement path and the transaction path
        response = client.get(f"/api/orders?since={highest + ahead}{limit}")
        assert response.status_code == 409 and response.mimetype == "application/json"
        body = response.get_json()
        assert body["error"] == "since_ahead_of_store"
        assert body["since"] == highest + ahead and body["max_updated"] == highest
        assert str(highest) in body["message"] and "reset the pipe" in body["message"].lower()
        assert response.headers["X-Dataset-Max-Updated"] == str(highest)
    assert client.get("/health").status_code == 200  # the store is fine
    warnings = [json.loads(line) for line in capsys.readouterr().out.splitlines()
                if "since is ahead" in line]
    assert warnings and warnings[0]["level"] == "WARNING"


def test_since_on_an_empty_store_is_409_but_no_since_is_an_empty_array(client):
    assert client.get("/api/orders?since=23").status_code == 409
    assert client.get("/api/orders?since=0").get_json() == []
    assert client.get(f"/api/orders?since={2 ** 63 - 1}").status_code == 409


def test_a_pipe_on_a_store_created_anew_fails_loudly_or_resets(backend, tmp_path, make_app_for):
    """The issue's scenario: a pipe synced on store A; the service restarts on an empty
    store B. Never a silent subset, also after B's writes pass A's old offset."""
    app_a = make_app_for(backend, tmp_path / "a")
    app_a.extensions["store"].upsert_orders(orders(1, 23))
    continuing, automatic = pipe_on(app_a), pipe_on(app_a, reprocessing="automatic")
    for pipe in (continuing, automatic):
        pipe.run()
        assert len(pipe.state.live()) == 23
    app_b = make_app_for(backend, tmp_path / "b")
    app_b.extensions["store"].upsert_orders(orders(100, 107))
    for pipe in (continuing, automatic):
        pipe.transport = pipe_on(app_b).transport
    for round in range(2):  # before, then after, B's values pass A's offset
        with pytest.raises(RunFailed, match="X-Dataset-Generation changed"):
            continuing.run()
        assert len(continuing.state.live()) == 23  # kept, not half-updated
        result = automatic.run()
        assert result.full == (round == 0)  # reset once; in sync with B from then on
        assert ("X-Dataset-Generation" in result.reset) == (round == 0)
        assert set(automatic.state.live()) == {str(i) for i in range(100, 108 + 40 * round)}
        app_b.extensions["store"].upsert_orders(orders(108, 147))


@pytest.fixture
def make_app_for(make_app, monkeypatch):
    """An app on a fresh database of `backend` in `folder` (several per test)."""
    from tests.support.apps import prepared_app
    opened = []

    def make(backend, folder):
        folder.mkdir()
        database = fresh_database(backend, folder)
        url = database.__enter__()
        app = prepared_app({"DATABASE_URL": url, "LOG_LEVEL": "ERROR"})
        opened.append((app, database))
        return app
    yield make
    for app, database in opened:
        app.extensions["store"].close()
        database.__exit__(None, None, None)


def run_service(database_url, *args):
    return subprocess.run([sys.executable, "-m", "service", *args], cwd=ROOT, capture_output=True,
                          text=True, env={"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"},
                          timeout=60, check=False)


def backup(database_url, backend, folder):
    """Copy the database aside, as an operator's backup would; return a restore function."""
    if backend == "sqlite":
        path = database_url.removeprefix("sqlite:///")
        with plain_sql(database_url) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copy(path, folder / "backup.sqlite3")

        def restore():
            for suffix in ("-wal", "-shm"):
                shutil.rmtree(path + suffix, ignore_errors=True)
            shutil.copy(folder / "backup.sqlite3", path)
        return restore
    if shutil.which("pg_dump") is None:
        pytest.skip("pg_dump is not installed")
    admin, schema = database_url.split("?")[0], database_url.split("search_path%3D")[1]
    dump = subprocess.run(["pg_dump", "--no-owner", "-n", schema, admin], capture_output=True,
                          text=True, check=True).stdout

    def restore():
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", admin], input=dump, text=True,
                       check=True, capture_output=True)
    return restore


def test_after_a_restore_and_the_restore_command_no_value_is_served_twice(database_url, backend, tmp_path, make_app):
    app = make_app()
    store = app.extensions["store"]
    store.upsert_orders(orders(1, 5))
    restore = backup(database_url, backend, tmp_path)
    at_backup = pull(app.test_client())[1][-1]["_updated"]
    # The timeline the restore loses. Its values ran 10 s ahead of the clock, as they do
    # after writes faster than one per microsecond: the clock alone would hand them out
    # again after the restore, so only the restore command keeps them apart.
    with plain_sql(database_url) as connection:
        connection.execute("UPDATE change_counter SET value = (SELECT now_us FROM clock) + 10000000"
                           if backend == "sqlite" else
                           "SELECT setval('change_seq', clock_us() + 10000000)")
    store.upsert_orders(orders(3, 9, name="lost"))
    pipe = pipe_on(app, reprocessing="continue")
    pipe.run()
    served = {e["_updated"]: e for e in pipe.state.dataset.values()}
    store.close()
    restore()
    result = run_service(database_url, "restored")
    assert result.returncode == 0 and "recorded restore" in result.stdout, result.stderr
    app = make_app()
    store = app.extensions["store"]
    store.upsert_orders(orders(3, 12, name="after"))
    response, entities = pull(app.test_client())
    assert response.headers["X-Dataset-Restore-Offset"] == str(at_backup)
    assert uuid.UUID(response.headers["X-Dataset-Restore-Uuid"])
    for entity in entities:  # a value served before is never served for another change
        assert entity["_updated"] not in served or served[entity["_updated"]] == entity
    assert min(e["_updated"] for e in entities if e["Username"] == "after") > max(served)
    # The pipe saw the lost timeline: the headers put it out of sync.
    pipe.transport = pipe_on(app).transport
    with pytest.raises(RunFailed, match="X-Dataset-Restore-Uuid"):
        pipe.run()
    pipe.config.reprocessing = "automatic"
    assert pipe.run().full
    assert {k: e["Username"] for k, e in pipe.state.live().items()} == {
        "1": "ann", "2": "ann", **{str(i): "after" for i in range(3, 13)}}
    assert pipe.run().entities == []  # in sync again: the next run continues


def test_a_pipe_that_saw_nothing_the_backup_lost_continues_after_a_restore(make_app):
    app = make_app()
    app.extensions["store"].upsert_orders(orders(1, 5))
    pipe = pipe_on(app)
    pipe.run()
    app.extensions["store"].record_restore()
    app.extensions["store"].upsert_orders(orders(6, 6))
    result = pipe.run()
    assert not result.full and [e["_id"] for e in result.entities] == ["6"]


def test_the_restore_command_refuses_an_offset_past_2_to_the_53(database_url):
    result = run_service(database_url, "restored", "--past", str(MAX_UPDATED + 1))
    assert result.returncode == 2 and "below" in result.stderr


def test_migrating_a_version_1_sqlite_store_keeps_its_counter_and_adds_the_bound(tmp_path):
    """Version 1 kept its counter in a table with no bound. The upgrade keeps its value
    (new values never fall below what was served), adds the bound and an identity."""
    url = f"sqlite:///{tmp_path}/orders.sqlite3"
    ahead = int(time.time() * 1_000_000) + 10 ** 9  # kept values must beat the clock here
    store = open_store(url)
    store.migrate()
    with plain_sql(url) as connection:  # make it look as version 1 left it
        connection.executescript(
            "DROP TABLE change_counter; CREATE TABLE change_counter (value INTEGER NOT NULL);"
            f"INSERT INTO change_counter VALUES ({ahead}); UPDATE schema_version SET version = 1;"
            "DROP TABLE store_identity;")
    store.migrate()
    store.upsert_orders(orders(1, 1))
    with plain_sql(url) as connection:
        [(value,)] = connection.execute("SELECT value FROM change_counter").fetchall()
        assert value == ahead + 1 and connection.execute("SELECT version FROM schema_version").fetchall() == [(sqlite.SCHEMA_VERSION,)]
        with pytest.raises(Exception, match="2\\*\\*53"):
            connection.execute("UPDATE change_counter SET value = ?", (MAX_UPDATED + 1,))
    stream = store.open_changes(0, None)
    assert stream.identity.generation and stream.identity.max_updated == value
    stream.close()
    store.close()


def test_the_upgrade_from_version_1_keeps_orders_untracked_and_refuses_rows_its_checks_refuse(tmp_path):
    url = f"sqlite:///{tmp_path}/orders.sqlite3"
    store = open_store(url)
    store.migrate()
    store.upsert_orders(orders(1, 3))
    with plain_sql(url) as connection:  # version 1's orders table had no length or blank checks
        before = connection.execute("SELECT seq, entity FROM changes ORDER BY seq").fetchall()
        connection.executescript(
            "CREATE TABLE plain AS SELECT * FROM orders;"
            "DROP VIEW next_entities; DROP VIEW order_documents; DROP TABLE orders;"
            "ALTER TABLE plain RENAME TO orders;"
            "UPDATE schema_version SET version = 1;")
    store.migrate()
    with plain_sql(url) as connection:
        assert connection.execute("SELECT seq, entity FROM changes ORDER BY seq").fetchall() == before
        with pytest.raises(Exception, match="constraint"):
            connection.execute("INSERT INTO orders VALUES (9, '   ', 'o', '1')")
        connection.executescript(  # version 1 again, now with a row this version refuses
            "CREATE TABLE plain AS SELECT * FROM orders; DROP VIEW next_entities; DROP VIEW order_documents;"
            "DROP TABLE orders; ALTER TABLE plain RENAME TO orders;"
            "INSERT INTO orders VALUES (9, '   ', 'o', '1'); UPDATE schema_version SET version = 1;")
    with pytest.raises(StoreUnavailable, match="constraints refuse"):
        store.migrate()
    with plain_sql(url) as connection:  # nothing was changed
        assert connection.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
        assert connection.execute("SELECT count(*) FROM orders").fetchone() == (4,)
    store.close()
