"""A restore is noticed without `python -m service restored`: a pipe at an offset the backup
lacks is reset (automatic reprocessing) or fails loudly, and never gets a silent subset."""
from __future__ import annotations

import glob
import shutil
import sqlite3
import subprocess
import urllib.parse
import uuid

import pytest

from service.store import Order
from tests.sesam_emulator import Pipe, PipeConfig, RunFailed
from tests.support.apps import client_transport, prepared_app
from tests.support.databases import live_orders, postgres_admin_url


def app_on(url: str):
    return prepared_app({"DATABASE_URL": url, "LOG_LEVEL": "WARNING"})


def load(app, ids) -> None:
    app.extensions["store"].bulk_load(Order(i, f"user{i}", "Thinkpad", "12.10") for i in ids)


def pipes_after_the_restore(url: str, state) -> None:
    """The store recorded a restore by itself. A pipe that saw changes the backup lacks
    fails loudly (a 409 while its offset is past everything, then out of sync); with
    automatic reprocessing it resets itself and ends with exactly the table."""
    app = app_on(url)
    try:
        client = app.test_client()
        pulled = client.get("/api/orders")
        assert pulled.headers.get("X-Dataset-Restore-Uuid"), "no restore was recorded"
        pulled.close()
        with pytest.raises(RunFailed, match="409|out of sync"):
            Pipe(client_transport(client), PipeConfig(), state).run()
        load(app, [500])  # the store moves on past the pipe's offset
        with pytest.raises(RunFailed, match="out of sync.*Restore"):
            Pipe(client_transport(client), PipeConfig(), state).run()
        pipe = Pipe(client_transport(client), PipeConfig(reprocessing="automatic"), state)
        assert pipe.run().reset
        assert {key: (e["Username"], e["Orders"], float(e["TotalSum"]))
                for key, e in pipe.state.live().items()} == live_orders(url)
    finally:
        app.extensions["store"].close()


def test_a_sqlite_file_copied_back_in_place_is_taken_for_a_restore(tmp_path):
    path = tmp_path / "orders.sqlite3"
    url = f"sqlite:///{path}"
    app = app_on(url)
    load(app, range(1, 11))
    source, backup = sqlite3.connect(path), sqlite3.connect(tmp_path / "backup.sqlite3")
    source.backup(backup)  # (a connection's `with` commits; it does not close)
    source.close()
    backup.close()
    load(app, range(11, 21))
    pipe = Pipe(client_transport(app.test_client()))
    pipe.run()  # the pipe has seen orders the backup lacks
    app.extensions["store"].close()
    for leftover in (tmp_path / "orders.sqlite3-wal", tmp_path / "orders.sqlite3-shm"):
        leftover.unlink(missing_ok=True)
    shutil.copy(tmp_path / "backup.sqlite3", path)  # the operator puts the copy back
    pipes_after_the_restore(url, pipe.state)
    assert sorted(map(int, live_orders(url))) == [*range(1, 11), 500]


def postgres_program(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)
    if not found:
        pytest.skip(f"{name} is not installed")
    return found


@pytest.mark.parametrize("into", ["a new database", "the same database"])
def test_a_postgresql_dump_loaded_without_restored_is_taken_for_a_restore(database_url, backend, into):
    if backend != "postgresql":
        pytest.skip("a PostgreSQL dump")
    app = app_on(database_url)
    load(app, range(1, 11))
    schema = urllib.parse.parse_qs(urllib.parse.urlsplit(database_url).query)["options"][0].split("=")[1]
    admin = postgres_admin_url()
    dump = subprocess.run([postgres_program("pg_dump"), "--schema", schema, "--no-owner", admin],
                          capture_output=True, text=True, check=True).stdout
    load(app, range(11, 21))
    pipe = Pipe(client_transport(app.test_client()))
    pipe.run()
    app.extensions["store"].close()
    import psycopg
    target_admin, target_url, created = admin, database_url, None
    with psycopg.connect(admin, autocommit=True) as connection:
        if into == "a new database":
            created = f"restored_{uuid.uuid4().hex[:8]}"
            connection.execute(f"CREATE DATABASE {created}")
            split = urllib.parse.urlsplit(admin)
            target_admin = urllib.parse.urlunsplit(split._replace(path=f"/{created}"))
            split = urllib.parse.urlsplit(database_url)
            target_url = urllib.parse.urlunsplit(split._replace(path=f"/{created}"))
        else:  # psql < dump into the same database, its schema dropped first
            connection.execute(f"DROP SCHEMA {schema} CASCADE")
    try:
        subprocess.run([postgres_program("psql"), "-q", "-v", "ON_ERROR_STOP=1", target_admin],
                       input=dump, capture_output=True, text=True, check=True)
        pipes_after_the_restore(target_url, pipe.state)
        assert sorted(map(int, live_orders(target_url))) == [*range(1, 11), 500]
    finally:
        if created:
            with psycopg.connect(admin, autocommit=True) as connection:
                connection.execute(f"DROP DATABASE {created} WITH (FORCE)")


def test_a_store_that_stays_where_it_is_records_no_restore(any_store, database_url):
    any_store.migrate()
    any_store.migrate()
    stream = any_store.open_changes(0, None)
    assert stream.identity.restore_uuid is None
    stream.close()
