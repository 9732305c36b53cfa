"""The embedded SQLite store: WAL mode, change tracking by triggers (schema_sqlite.sql)."""
from __future__ import annotations

import itertools
import sqlite3
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Iterable, Iterator

from .base import Order, StoreRejected, StoreUnavailable

SCHEMA_VERSION = 1
CHUNK_ROWS = 1000
BUSY_TIMEOUT_MS = 5000

# The entity text is put together by SQLite from the stored body: `_id` and `_updated`
# are only known here (the seq is assigned after the body is made).
ENTITY_SQL = """SELECT '{"_id":"' || order_id || '","_updated":' || seq || ',' || substr(body, 2)
FROM changes WHERE seq > ? ORDER BY seq LIMIT ?"""

UPSERT_SQL = """INSERT INTO orders (id, username, orders, total_sum) VALUES (?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET username = excluded.username, orders = excluded.orders,
total_sum = excluded.total_sum"""


def _unavailable(error: sqlite3.Error) -> StoreUnavailable:
    """Translate a SQLite error into a message fit for a client (no SQL, no paths)."""
    text = str(error).lower()
    for needle, reason in (("readonly", "the database is read-only"),
                           ("full", "the disk holding the database is full"),
                           ("locked", "the database is busy; retry"),
                           ("busy", "the database is busy; retry"),
                           ("unable to open", "the database file cannot be opened"),
                           ("no such table", "the database has no schema; run the migration"),
                           ("i/o", "the database had an I/O error")):
        if needle in text:
            return StoreUnavailable(reason)
    return StoreUnavailable("the database failed")


@contextmanager
def _translated_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.IntegrityError as error:
        raise StoreRejected("the database rejected the order (a constraint failed)") from error
    except sqlite3.Error as error:
        raise _unavailable(error) from error


class SqliteChangeStream:
    """One SELECT over the change log: a single read transaction, so a consistent snapshot."""

    def __init__(self, connection: sqlite3.Connection, since: int, limit: int | None):
        self._connection = connection
        with _translated_errors():
            self._cursor = connection.execute(ENTITY_SQL, (since, -1 if limit is None else limit))

    def chunks(self) -> Iterator[list[str]]:
        while True:
            with _translated_errors():
                rows = self._cursor.fetchmany(CHUNK_ROWS)
            if not rows:
                return
            yield [row[0] for row in rows]

    def close(self) -> None:
        if self._connection is not None:
            self._cursor.close()
            self._connection.close()
            self._connection = None


class SqliteStore:
    def __init__(self, path: str):
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE for writes), and a
        # lone SELECT is its own read transaction. check_same_thread is off because a
        # stream may be closed from the server's close callback.
        with _translated_errors():
            connection = sqlite3.connect(self.path, isolation_level=None,
                                         check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
            # NORMAL is durable against a crash of the process in WAL mode (only an OS
            # crash or power loss may lose the last commits) and much faster than FULL.
            connection.execute("PRAGMA synchronous = NORMAL")
        return connection

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: all or nothing. IMMEDIATE takes the write lock up front,
        so two writers queue on busy_timeout instead of failing on a lock upgrade."""
        connection = self._connect()
        try:
            with _translated_errors():
                connection.execute("BEGIN IMMEDIATE")
                try:
                    yield connection
                    connection.execute("COMMIT")
                except BaseException:
                    if connection.in_transaction:
                        connection.execute("ROLLBACK")
                    raise
        finally:
            connection.close()

    def migrate(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        schema = resources.files(__package__).joinpath("schema_sqlite.sql").read_text()
        connection = self._connect()
        try:
            with _translated_errors():
                connection.execute("PRAGMA journal_mode = WAL")
                connection.executescript(f"BEGIN IMMEDIATE;\n{schema}\n"
                                         "DELETE FROM schema_version;\n"
                                         f"INSERT INTO schema_version VALUES ({SCHEMA_VERSION});\n"
                                         "COMMIT;")
        finally:
            connection.close()

    def load_if_empty(self, orders: Iterable[Order]) -> bool:
        with self._write() as connection:
            if connection.execute("SELECT EXISTS (SELECT 1 FROM changes)").fetchone()[0]:
                return False
            connection.executemany(UPSERT_SQL, [_row(order) for order in orders])
            return True

    def ping(self) -> None:
        connection = self._connect()
        try:
            with _translated_errors():
                connection.execute("SELECT count(*) FROM schema_version").fetchone()
        finally:
            connection.close()

    def open_changes(self, since: int, limit: int | None) -> SqliteChangeStream:
        connection = self._connect()
        try:
            return SqliteChangeStream(connection, since, limit)
        except BaseException:
            connection.close()
            raise

    def get_order(self, order_id: int) -> str | None:
        connection = self._connect()
        try:
            with _translated_errors():
                row = connection.execute(
                    "SELECT c.body FROM orders o JOIN changes c ON c.order_id = o.id WHERE o.id = ?",
                    (order_id,)).fetchone()
        finally:
            connection.close()
        return row[0] if row else None

    def upsert_orders(self, orders: list[Order]) -> tuple[int, int]:
        created = 0
        with self._write() as connection:
            for order in orders:
                exists = connection.execute("SELECT 1 FROM orders WHERE id = ?", (order.id,)).fetchone()
                created += exists is None
                connection.execute(UPSERT_SQL, _row(order))
        return created, len(orders) - created

    def delete_order(self, order_id: int) -> bool:
        with self._write() as connection:
            return connection.execute("DELETE FROM orders WHERE id = ?", (order_id,)).rowcount > 0

    def bulk_load(self, orders: Iterable[Order], batch_size: int = 10_000) -> int:
        written = 0
        rows = map(_row, orders)
        while batch := list(itertools.islice(rows, batch_size)):
            with self._write() as connection:
                connection.executemany(UPSERT_SQL, batch)
            written += len(batch)
        return written

    def close(self) -> None:
        """Nothing is held between calls: every operation opens its own connection."""


def _row(order: Order) -> tuple[int, str, str, str]:
    return order.id, order.username, order.orders, order.total_sum
