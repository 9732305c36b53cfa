"""The embedded SQLite store: WAL mode, change tracking by triggers (schema_sqlite.sql)."""
from __future__ import annotations

import json
import logging
import os
import queue
import sqlite3
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from .base import (RESTORE_MARGIN_US, BatchedLoads, ChangeStream, Order, Restore, StoreIdentity,
                   StoreRejected, StoreUnavailable, new_uuid, newer_schema_allows)
from .receiver import Receiver, T
from .verify import CHUNK_DIFFS_TWO_JOINS, Verifier

log = logging.getLogger("service")
TRIGGERS = ("orders_track_delete", "orders_track_insert", "orders_track_update")
NEXT_VALUE_SQL = "UPDATE change_counter SET value = max(value + 1, (SELECT now_us FROM clock))"

# 2: `_updated` from the clock, the store's identity; 3: the push receiver's tables;
# 4: a live change keeps the values its entity was made from
SCHEMA_VERSION = 4
# The oldest code that runs on this schema: version 2's code would take it for version 1's.
OLDEST_CODE = 3
# How long a writer queues for SQLite's one write lock before it gives up with a 503. Far
# above what a write takes: a batch of 10,000 orders, the largest MAX_BODY_BYTES admits,
# takes about 1 s at a quarter of a core, so ten such batches queued one after another
# still get through. Readers never wait for it (WAL).
BUSY_TIMEOUT_MS = 60_000
DELIVERED_BUSY_TIMEOUT_MS = 500  # recording how far a pull delivered the feed
MIN_FREE_BYTES = 1 << 20  # below this, /health says the disk is full
IDLE_CONNECTIONS = 8  # kept open per process: opening one costs more than a small pull

# One chunk of the stream, joined by SQLite itself: the ready-made entities after `since`,
# comma-separated, with the last seq (the next chunk's since) and the count. As a BLOB,
# the text reaches Python as the UTF-8 bytes that go out, without a decode and encode.
# The chunk is a range of seq: up to the seq of the `rows`-th change after `since` (or to
# the end, when fewer are left). The aggregate then reads the table directly, in seq
# order, as a search on the primary key always does; the contract tests check the order
# of every stream. It reads a full sync about 30% faster than aggregating a
# `LIMIT` subquery, which copies every row through a co-routine first.
_CHUNK_SQL = """SELECT CAST(group_concat(entity, ',') AS BLOB), max(seq), count(*){identity}
    FROM changes WHERE seq > :since AND seq <= coalesce(
        (SELECT seq FROM changes WHERE seq > :since ORDER BY seq LIMIT 1 OFFSET :rows - 1),
        9223372036854775807)"""
CHUNK_SQL = _CHUNK_SQL.format(identity="")
# The first chunk comes with the store's identity, in the same statement and so the same
# snapshot: the highest `_updated` it reports is the one a full pull ends with.
FIRST_CHUNK_SQL = _CHUNK_SQL.format(identity=""",
    (SELECT max(seq) FROM changes), (SELECT generation FROM store_identity),
    (SELECT restore_uuid FROM store_identity), (SELECT restore_offset FROM store_identity)""")

# Version 1's orders and counter tables lack this version's CHECKs, which SQLite cannot
# add to a table: both are made anew with their rows, copied back before the triggers
# exist, so no order is recorded as changed. (schema_sqlite.sql marks where.)
V1_OUT = """CREATE TEMP TABLE counter_v1 AS SELECT value FROM change_counter;
DROP TABLE change_counter;
CREATE TEMP TABLE orders_v1 AS SELECT * FROM orders;
DROP VIEW IF EXISTS next_entities;
DROP VIEW IF EXISTS order_documents;
DROP TABLE orders;"""
V1_IN = """INSERT INTO orders SELECT * FROM temp.orders_v1;
DROP TABLE temp.orders_v1;
UPDATE change_counter SET value = (SELECT value FROM temp.counter_v1);
DROP TABLE temp.counter_v1;"""
# Version 4: changes keep the values their entity was made from. Before version 4 they
# are taken where the entity is the one the order's values make; any other change keeps
# NULLs, so the verification finds it differing, as it did.
VALUES_OUT = """ALTER TABLE changes ADD COLUMN username TEXT;
ALTER TABLE changes ADD COLUMN orders TEXT;
ALTER TABLE changes ADD COLUMN total_sum TEXT;"""
VALUES_IN = """UPDATE changes SET username = d.username, orders = d.orders, total_sum = d.total_sum
FROM order_documents d WHERE d.id = changes.order_id
AND changes.entity = '{"_id":"' || d.id || '","_updated":' || changes.seq || ',' || substr(d.document, 2);"""

UPSERT_SQL = """INSERT INTO orders (id, username, orders, total_sum) VALUES (?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET username = excluded.username, orders = excluded.orders,
total_sum = excluded.total_sum"""


# SQLite's primary result codes (sqlite.org/rescode.html), what each tells a client.
_REASONS = {sqlite3.SQLITE_READONLY: "the database is read-only",
            sqlite3.SQLITE_FULL: "the disk holding the database is full",
            sqlite3.SQLITE_BUSY: "the database is busy; retry",
            sqlite3.SQLITE_LOCKED: "the database is busy; retry",
            sqlite3.SQLITE_CANTOPEN: "the database file cannot be opened",
            sqlite3.SQLITE_IOERR: "the database had an I/O error"}
COUNTER_CHECK = "the change counter has reached 2**53"  # the CHECK's name (schema_sqlite.sql)


def _unavailable(error: sqlite3.Error) -> StoreUnavailable:
    """Translate a SQLite error into a message fit for a client (no SQL, no paths), by its
    result code. Two cases have no code of their own: our named CHECK on the counter (a
    SQLITE_CONSTRAINT_CHECK, told apart by its name) and a missing table (SQLITE_ERROR)."""
    code = getattr(error, "sqlite_errorcode", None)
    if COUNTER_CHECK in str(error):
        return StoreUnavailable(COUNTER_CHECK)
    if code is not None and code & 0xFF in _REASONS:  # the primary code of an extended one
        return StoreUnavailable(_REASONS[code & 0xFF])
    if code == sqlite3.SQLITE_ERROR and str(error).startswith("no such table"):
        return StoreUnavailable("the database has no schema; run the migration")
    return StoreUnavailable("the database failed")


@contextmanager
def _translated_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.IntegrityError as error:
        if COUNTER_CHECK in str(error):
            raise _unavailable(error) from error
        raise StoreRejected("the database rejected the order (a constraint failed)") from error
    except sqlite3.Error as error:
        raise _unavailable(error) from error


class SqliteChunks:
    """One pull's reads (base.ChunkSource): every chunk a statement after the last `_updated`
    read, all in one read transaction, a consistent snapshot."""

    def __init__(self, store: SqliteStore, connection: sqlite3.Connection):
        self._store, self._connection, self._released = store, connection, False
        self._since = 0

    def open(self, since: int, limit: int | None, rows: int,
             one_statement: bool) -> tuple[StoreIdentity, bytes, int]:
        self._since = since
        with _translated_errors():
            if not one_statement:  # the transaction starts with the first read
                self._connection.execute("BEGIN")
            row = self._connection.execute(FIRST_CHUNK_SQL, {"since": since, "rows": rows}).fetchone()
        max_updated, generation, restore_uuid, restore_offset = row[3:]
        if generation is None:
            raise StoreUnavailable("the database has no store identity; run the migration")
        return StoreIdentity(generation, restore_uuid, restore_offset, max_updated), *self._took(row[:3])

    def read(self, rows: int) -> tuple[bytes, int]:
        with _translated_errors():
            row = self._connection.execute(CHUNK_SQL, {"since": self._since, "rows": rows}).fetchone()
        return self._took(row)

    def _took(self, row: tuple) -> tuple[bytes, int]:
        text, last, count = row
        if not count:
            return b"", 0
        self._since = last
        return _valid_utf8(text), count

    def finish(self) -> None:
        pass  # each chunk is a statement of its own, ended when it was read

    def close(self) -> None:
        if not self._released:
            self._released = True
            self._store._release(self._connection)  # rolls the read transaction back


class SqliteTx:
    """A SQLite write transaction as the receiver and the verification use it
    (store/receiver.py, store/verify.py)."""

    ID_LIST = "SELECT value FROM json_each(?)"  # SQLite has no arrays: a JSON one

    def __init__(self, connection: sqlite3.Connection):
        self.connection = connection

    @staticmethod
    def id_list(ids: list[int]) -> str:
        return json.dumps(ids)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.connection.execute(sql, params).fetchall()

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.connection.execute(sql, params)

    def count(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.connection.execute(sql, params).rowcount

    def upsert(self, orders: list[Order]) -> None:
        self.connection.executemany(UPSERT_SQL, map(_row, orders))

    def differences(self, low: int, high: int) -> list[tuple[int, bool, bool]]:
        return self.rows(CHUNK_DIFFS_TWO_JOINS, (low, high) * 4)

    def record_live(self, order_ids: list[int]) -> None:
        for order_id in order_ids:  # as the triggers record a change (schema_sqlite.sql)
            self.connection.execute(NEXT_VALUE_SQL)
            self.connection.execute("DELETE FROM changes WHERE order_id = ?", (order_id,))
            self.connection.execute("INSERT INTO changes (seq, order_id, entity, username, orders, "
                                    "total_sum) SELECT * FROM next_entities WHERE order_id = ?", (order_id,))

    def record_tombstones(self, order_ids: list[int]) -> None:
        for order_id in order_ids:
            self.connection.execute(NEXT_VALUE_SQL)
            self.connection.execute("DELETE FROM changes WHERE order_id = ?", (order_id,))
            self.connection.execute(
                """INSERT INTO changes (seq, order_id, entity) SELECT value, :id,
                '{"_id":"' || :id || '","_updated":' || value || ',"_deleted":true}'
                FROM change_counter""", {"id": order_id})


class SqliteStore(BatchedLoads, Receiver, Verifier):
    def __init__(self, path: str):
        self.path = Path(path)
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """A connection from the idle ones (or a new one), given back afterwards."""
        connection = self._acquire()
        try:
            yield connection
        finally:
            self._release(connection)

    def _acquire(self) -> sqlite3.Connection:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return self._connect()

    def _release(self, connection: sqlite3.Connection) -> None:
        try:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
        except sqlite3.Error:
            connection.close()
            return
        if self._idle.qsize() < IDLE_CONNECTIONS:
            self._idle.put(connection)
        else:
            connection.close()

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
            connection.text_factory = _decode_text
        return connection

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: all or nothing. IMMEDIATE takes the write lock up front,
        so two writers queue on busy_timeout instead of failing on a lock upgrade."""
        try:
            with self._connection() as connection, _translated_errors():
                connection.execute("BEGIN IMMEDIATE")
                try:
                    yield connection
                    connection.execute("COMMIT")
                except BaseException:
                    if connection.in_transaction:
                        connection.execute("ROLLBACK")
                    raise
        except StoreUnavailable as error:
            if self._read_only():  # SQLite only says "disk I/O error"; say why
                raise StoreUnavailable("the database is read-only") from error
            raise

    def migrate(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreUnavailable("the database's folder cannot be created") from error
        schema = _schema()
        connection = self._connect()
        try:
            with _translated_errors():
                connection.execute("PRAGMA journal_mode = WAL")
                found, oldest_code = _schema_version(connection)
                if newer_schema_allows(found, oldest_code, SCHEMA_VERSION):
                    log.info("the database's schema is version %s, newer than this code's %s, "
                             "which it allows: used as it is", found, SCHEMA_VERSION)
                    return
                upgrade = found == 1  # later ones only add tables and columns
                columns = [row[1] for row in connection.execute("PRAGMA table_info(changes)")]
                add_values = bool(columns) and "username" not in columns
                tables, triggers = schema.split("-- @triggers\n", 1)
                connection.executescript("\n".join([
                    "BEGIN IMMEDIATE;",
                    V1_OUT if upgrade else "",
                    tables,
                    V1_IN if upgrade else "",
                    VALUES_OUT if add_values else "",
                    triggers,
                    VALUES_IN if add_values else "",
                    # Made anew: before version 3 it had no oldest_code column.
                    "DROP TABLE schema_version;",
                    "CREATE TABLE schema_version (version INTEGER NOT NULL, oldest_code INTEGER);",
                    f"INSERT INTO schema_version VALUES ({SCHEMA_VERSION}, {OLDEST_CODE});",
                    ("INSERT INTO store_identity (generation) SELECT "
                    f"'{new_uuid()}' WHERE NOT EXISTS (SELECT 1 FROM store_identity);"),
                    "COMMIT;"]))
        except StoreRejected as error:
            raise StoreUnavailable("the database holds orders that this version's constraints "
                                   "refuse (written by another program?); nothing was changed") from error
        finally:
            connection.close()
        self._check_copy_back()

    def load_if_empty(self, orders: Iterable[Order]) -> bool:
        with self._write() as connection:
            if connection.execute("SELECT EXISTS (SELECT 1 FROM changes)").fetchone()[0]:
                return False
            connection.executemany(UPSERT_SQL, [_row(order) for order in orders])
            return True

    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers and can take writes."""
        with self._connection() as connection, _translated_errors():
            connection.execute("SELECT count(*) FROM schema_version").fetchone()
        # Reads still work on a full or read-only disk, so look at the disk itself.
        disk = os.statvfs(self.path.parent)
        if disk.f_flag & os.ST_RDONLY or self._read_only():
            raise StoreUnavailable("the database is read-only")
        if disk.f_bavail * disk.f_frsize < MIN_FREE_BYTES:
            raise StoreUnavailable("the disk holding the database is full")

    def _read_only(self) -> bool:
        """Whether the database or its write-ahead log cannot be written (even by root:
        access() honours the immutable flag)."""
        files = [self.path, self.path.with_name(self.path.name + "-wal")]
        return any(file.exists() and not os.access(file, os.W_OK) for file in files)

    def open_changes(self, since: int, limit: int | None) -> ChangeStream:
        return ChangeStream(SqliteChunks(self, self._acquire()), since, limit)

    def record_restore(self, past: int = 0) -> Restore:
        restore_uuid = new_uuid()
        with self._write() as connection:
            offset = connection.execute("SELECT max(seq) FROM changes").fetchone()[0]
            connection.execute("UPDATE store_identity SET restore_uuid = ?, restore_offset = ?",
                               (restore_uuid, offset))
            connection.execute("UPDATE change_counter SET value = max(value, ?, "
                               "(SELECT now_us FROM clock) + ?)", (past, RESTORE_MARGIN_US))
            counter = connection.execute("SELECT value FROM change_counter").fetchone()[0]
        return Restore(restore_uuid, offset, counter)

    def get_order(self, order_id: int) -> str | None:
        with self._connection() as connection, _translated_errors():
            row = connection.execute("SELECT document FROM order_documents WHERE id = ?",
                                     (order_id,)).fetchone()
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

    def _write_batch(self, batch: list[Order]) -> None:
        with self._write() as connection:
            connection.executemany(UPSERT_SQL, map(_row, batch))

    def _receiving(self, work: Callable[[SqliteTx], T]) -> T:
        # SQLite's one write lock is the receiver's lock too.
        with self._write() as connection:
            return work(SqliteTx(connection))

    def _reading(self, work: Callable[[SqliteTx], T]) -> T:
        with self._connection() as connection, _translated_errors():
            return work(SqliteTx(connection))

    _verifying = _receiving  # SQLite's one write lock is the writers' lock too
    _verifying_read = _reading

    def _assert_tracking(self, fix: bool = True) -> list[str]:
        """A dropped trigger is created again (with all three, as the schema has them).
        Say what was (or, not fixing, is) wrong."""
        with self._connection() as connection, _translated_errors():
            present = {row[0] for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'orders'")}
        missing = sorted(set(TRIGGERS) - present)
        if not fix or not missing:
            return [f"the trigger {name} was dropped" for name in missing]
        triggers = _schema().split("-- @triggers\n", 1)[1]
        with self._write() as connection:
            for statement in _statements(triggers):
                connection.execute(statement)
        log.warning("change tracking put back: recreated the dropped triggers %s", ", ".join(missing))
        return [f"the trigger {name} was dropped" for name in missing]

    @property
    def _delivered_file(self) -> Path:
        """Beside the database: how far its feed was delivered, kept outside the file so
        that a copy of the file put back in place shows itself (_check_copy_back)."""
        return self.path.with_name(self.path.name + ".delivered")

    def _check_copy_back(self) -> None:
        """A database file whose changes end below what its feed already delivered is an
        older copy put back in place: record a restore, as `python -m service restored`
        would, past every offset a pipe may hold."""
        try:
            delivered = json.loads(self._delivered_file.read_text())
        except (OSError, ValueError):
            return
        with self._connection() as connection, _translated_errors():
            generation, highest = connection.execute(
                "SELECT generation, (SELECT max(seq) FROM changes) FROM store_identity").fetchone()
        if delivered.get("generation") == generation and (highest or 0) < delivered.get("max_updated", 0):
            restore = self.record_restore(past=delivered["max_updated"])
            log.warning("the database file is older than the feed it delivered (a copy put back in "
                        "place): recorded as restored, so pipes past its offset reset",
                        extra={"restore_uuid": restore.restore_uuid, "restore_offset": restore.restore_offset,
                               "delivered": delivered["max_updated"]})

    def _note_delivered(self, max_updated: int) -> None:
        # One statement, its own transaction, after the pull's response is sent: it must
        # not hold a server thread behind a long write, so it waits briefly, and a mark not
        # recorded stays lower (pushes are kept back until the next pull, never lost).
        with self._connection() as connection, _translated_errors():
            connection.execute(f"PRAGMA busy_timeout = {DELIVERED_BUSY_TIMEOUT_MS}")
            try:
                connection.execute("UPDATE feed_delivered SET max_updated = ? WHERE max_updated < ?",
                                   (max_updated, max_updated))
                generation = connection.execute("SELECT generation FROM store_identity").fetchone()[0]
            finally:
                connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        try:
            temporary = self._delivered_file.with_suffix(".tmp")
            temporary.write_text(json.dumps({"generation": generation, "max_updated": max_updated}))
            temporary.replace(self._delivered_file)  # atomic: never half a file
        except OSError as error:
            raise StoreUnavailable("the file beside the database cannot be written") from error

    def close(self) -> None:
        """Close the idle connections (streams still open close theirs when they end)."""
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


def _schema() -> str:
    return resources.files(__package__).joinpath("schema_sqlite.sql").read_text()


def _statements(script: str) -> list[str]:
    """A script's statements, split where SQLite says each is complete (a trigger's body
    holds semicolons of its own)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return [statement for statement in statements if statement.strip(" \n;")]


def _schema_version(connection: sqlite3.Connection) -> tuple[int | None, int | None]:
    """The schema's version and the oldest code it allows (None, None: no schema yet)."""
    columns = [row[1] for row in connection.execute("PRAGMA table_info(schema_version)")]
    if not columns:
        return None, None
    oldest = "oldest_code" if "oldest_code" in columns else "NULL"
    row = connection.execute(f"SELECT version, {oldest} FROM schema_version "
                             "ORDER BY version DESC LIMIT 1").fetchone()
    return (row[0], row[1]) if row else (None, None)


def _valid_utf8(text: bytes) -> bytes:
    """SQLite stores whatever bytes another program hands it as TEXT and cannot check
    them (schema_sqlite.sql): serve invalid UTF-8 with U+FFFD in its place, so the feed
    stays valid JSON for every client. ASCII, the common case, costs one scan in C."""
    if text.isascii():
        return text
    try:
        text.decode("utf-8")
        return text
    except UnicodeDecodeError:
        return text.decode("utf-8", "replace").encode("utf-8")


def _decode_text(value: bytes) -> str:
    """Text read from the database, invalid UTF-8 replaced (see _valid_utf8)."""
    return value.decode("utf-8", "replace")


def _row(order: Order) -> tuple[int, str, str, str]:
    return order.id, order.username, order.orders, order.total_sum
