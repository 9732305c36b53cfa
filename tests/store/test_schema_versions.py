"""A database the code cannot serve is refused: each schema version records the oldest code
that can run on it, so a rollback one release back keeps working where the schema allows
it, and no code ever migrates a newer schema down."""
from __future__ import annotations

import pytest

from service.store import SchemaTooNew, open_store
from service.store import postgresql, sqlite
from tests.support.databases import plain_sql
from tests.support.servers import start_gunicorn


def code_version(backend: str) -> int:
    return {"sqlite": sqlite.SCHEMA_VERSION, "postgresql": postgresql.SCHEMA_VERSION}[backend]


def schema_snapshot(database_url: str, backend: str) -> list:
    with plain_sql(database_url) as connection:
        if backend == "sqlite":
            return connection.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall() \
                + connection.execute("SELECT * FROM schema_version").fetchall()
        return connection.execute(
            "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'orders'::regclass "
            "AND NOT tgisinternal ORDER BY tgname").fetchall() \
            + connection.execute("SELECT version, oldest_code FROM schema_version").fetchall()


def made_by_a_newer_release(database_url: str, version: int, oldest_code: int) -> None:
    with plain_sql(database_url) as connection:
        connection.execute("UPDATE schema_version SET version = ?, oldest_code = ?",
                           (version, oldest_code))


def test_a_schema_records_the_oldest_code_that_runs_on_it(any_store, database_url, backend):
    with plain_sql(database_url) as connection:
        version, oldest = connection.execute("SELECT version, oldest_code FROM schema_version").fetchone()
    assert version == code_version(backend) and oldest is not None and oldest <= version


def test_a_newer_schema_that_does_not_allow_this_code_is_refused_and_left_alone(
        any_store, database_url, backend):
    mine = code_version(backend)
    made_by_a_newer_release(database_url, mine + 1, mine + 1)
    before = schema_snapshot(database_url, backend)
    with pytest.raises(SchemaTooNew, match=f"version {mine + 1}.*this code is of version {mine}"):
        open_store(database_url).migrate()
    assert schema_snapshot(database_url, backend) == before


def test_a_newer_schema_that_allows_this_code_is_served_as_it_is(any_store, database_url, backend):
    mine = code_version(backend)
    made_by_a_newer_release(database_url, mine + 1, mine)
    before = schema_snapshot(database_url, backend)
    store = open_store(database_url)
    store.migrate()  # never down: the newer release's schema stays
    assert schema_snapshot(database_url, backend) == before
    stream = store.open_changes(0, None)
    assert list(stream.chunks()) == [] and stream.identity.generation
    stream.close()
    store.close()


@pytest.mark.slow
def test_the_service_does_not_start_on_a_database_it_cannot_serve(any_store, database_url, backend, tmp_path):
    mine = code_version(backend)
    made_by_a_newer_release(database_url, mine + 1, mine + 1)
    with pytest.raises(RuntimeError, match="exited with 78") as failure:
        start_gunicorn(database_url, tmp_path)
    assert f"schema is version {mine + 1}" in str(failure.value)
    assert f"this code is of version {mine}" in str(failure.value)
