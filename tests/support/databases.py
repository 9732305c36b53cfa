"""The databases the tests run on: SQLite always, PostgreSQL wherever there is one.

PostgreSQL tests use TEST_POSTGRES_URL when it is set (a database the tests may create
schemas in, e.g. postgresql://orders:orders-test@127.0.0.1/orders_test); otherwise a
throwaway cluster they start themselves, where the server programs are installed
(tests/support/postgres_cluster.py). Each test gets a fresh schema. Where there is
neither, they skip, unless REQUIRE_POSTGRES=1 (set by CI), which makes that a failure.
"""
from __future__ import annotations

import os
import sqlite3
import time
import urllib.parse
import uuid
from contextlib import contextmanager
from pathlib import Path
from collections.abc import Iterator

import pytest

from tests.support.postgres_cluster import throwaway_url

BACKENDS = ["sqlite", "postgresql"]


def postgres_admin_url() -> str:
    url = os.environ.get("TEST_POSTGRES_URL") or throwaway_url()
    if not url:
        reason = ("PostgreSQL tests need the PostgreSQL server programs (initdb and pg_ctl; "
                  "Debian: apt install postgresql) or TEST_POSTGRES_URL")
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(f"REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    return url


@contextmanager
def fresh_database(backend: str, folder: Path) -> Iterator[str]:
    """Yield a DATABASE_URL for an empty database of that backend; drop it afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{folder}/orders.sqlite3"
        return
    import psycopg
    admin = postgres_admin_url()
    schema = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in admin else "?"
    try:
        yield admin + separator + urllib.parse.urlencode({"options": f"-csearch_path={schema}"})
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


@contextmanager
def plain_sql(database_url: str):
    """A plain autocommit connection of the database's own driver ("another program").
    Its execute() takes `?` placeholders on both backends."""
    if database_url.startswith("sqlite:///"):
        lite = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            yield lite
        finally:
            lite.close()
        return
    import psycopg

    class Adapter:
        def __init__(self, connection):
            self.connection = connection

        def execute(self, sql: str, params=()):
            return self.connection.execute(sql.replace("?", "%s"), params)

    with psycopg.connect(database_url, autocommit=True) as connection:
        yield Adapter(connection)


def wait_until_delivered(database_url: str, timeout: float = 10) -> None:
    """Wait until the service has recorded that a pull delivered the whole feed. It
    records that once the response is sent, so a client that pushes right after its
    pull can be faster, and a full sync would then (rightly) sweep nothing."""
    deadline = time.monotonic() + timeout
    with plain_sql(database_url) as connection:
        while True:
            delivered, newest = connection.execute(
                "SELECT (SELECT max_updated FROM feed_delivered), "
                "(SELECT coalesce(max(seq), 0) FROM changes)").fetchone()
            if delivered >= newest:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the feed was delivered up to {delivered}, not {newest}")
            time.sleep(0.02)


def live_orders(database_url: str) -> dict[str, tuple]:
    """The table's live orders as {"id": (Username, Orders, float TotalSum)}."""
    with plain_sql(database_url) as connection:
        rows = connection.execute("SELECT id, username, orders, total_sum FROM orders").fetchall()
    return {str(i): (u, o, float(t)) for i, u, o, t in rows}


def load_orders(database_url: str, count: int) -> str:
    """Migrate and bulk-load orders 1..count (through the store's own bulk path)."""
    from service.store import Order
    return load_into(database_url, (Order(i, f"user{i}", "Thinkpad X1 Carbon", f"{i % 9000}.50")
                                    for i in range(1, count + 1)))


def load_into(database_url: str, orders) -> str:
    """Migrate and bulk-load the given orders (through the store's own bulk path)."""
    from service.store import open_store
    store = open_store(database_url)
    try:
        store.migrate()
        store.bulk_load(orders)
    finally:
        store.close()
    return database_url
