"""The PostgreSQL store: change tracking by trigger (schema_postgresql.sql), a connection
pool, streams read by one streamed query (one snapshot), and statement timeouts."""
from __future__ import annotations

import itertools
import logging
import random
import time
from contextlib import contextmanager
from importlib import resources
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import Any, TypeVar, cast

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import scalar_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from .base import (CHUNK_ROWS, RESTORE_MARGIN_US, BatchedLoads, ChangeStream, Order, Restore,
                   StoreIdentity, StoreRejected, StoreUnavailable, new_uuid, newer_schema_allows)
from .receiver import Receiver
from .verify import CHUNK_DIFFS_FULL_JOIN, Verifier

log = logging.getLogger("service")
TRIGGERS = ("orders_track_delete", "orders_track_insert", "orders_track_truncate",
            "orders_track_update")
TRIGGER_STATES = {"O": "firing only in the origin role (ENABLE TRIGGER)",
                  "D": "disabled", "R": "firing only in the replica role"}
# A fresh change for each order: its entity as the table holds it, or a tombstone; under
# lock_changes(), which the verification takes first (schema_postgresql.sql).
RECORD_CHANGES = """INSERT INTO changes (seq, order_id, entity, username, orders, total_sum)
{select}
ON CONFLICT ON CONSTRAINT changes_order_id_key DO UPDATE SET seq = excluded.seq,
entity = excluded.entity, username = excluded.username, orders = excluded.orders,
total_sum = excluded.total_sum"""
RECORD_LIVE_SQL = RECORD_CHANGES.format(select="""SELECT seq, id, change_entity(seq, id, document),
    username, orders, total_sum
FROM (SELECT nextval('change_seq') AS seq, o.id, order_document(o) AS document, o.username,
             o.orders, o.total_sum::text AS total_sum
      FROM orders o WHERE o.id = ANY(%s::bigint[])) AS numbered""")
RECORD_TOMBSTONES_SQL = RECORD_CHANGES.format(select="""SELECT seq, id, change_entity(seq, id, NULL),
    NULL, NULL, NULL
FROM (SELECT nextval('change_seq') AS seq, id FROM unnest(%s::bigint[]) AS id) AS numbered""")

# 2: changes recorded per statement, set-based; 3: `_updated` from the clock, the identity;
# 4: the push receiver's tables; 5: a live change keeps the values its entity was made from
SCHEMA_VERSION = 5
OLDEST_CODE = 3  # version 3's code serves this schema (it ignores the receiver's tables)
# Rows per network read of a stream (libpq's chunked mode, libpq 17 and later; the
# psycopg[binary] wheel bundles it). Older libpq can only stream row by row: slower.
STREAM_FETCH_ROWS = CHUNK_ROWS if psycopg.pq.version() >= 170000 else 1
STATEMENT_TIMEOUT_MS = 30_000
# A slow Sesam reader keeps a stream's query running; Sesam's own read_timeout is
# 1800 s, so no legitimate stream lasts longer, and nothing stays idle in a transaction
# longer either.
STREAM_TIMEOUT_MS = IDLE_IN_TRANSACTION_TIMEOUT_MS = 1_800_000
POOL_TIMEOUT_S = 5.0
T = TypeVar("T")
MIGRATION_LOCK = 0x6F72646572  # "order": one migration at a time across instances
RECEIVER_LOCK = 0x70757368  # "push": one push request at a time across instances

# The ready-made entities after `since`, oldest first (LIMIT NULL is no limit).
ENTITY_SQL = "SELECT entity FROM changes WHERE seq > %s ORDER BY seq LIMIT %s"
# The store's identity with the highest `_updated` committed (see StoreIdentity).
IDENTITY_SQL = ("SELECT (SELECT max(seq) FROM changes), generation, restore_uuid, restore_offset "
                "FROM store_identity")
# A pull that fits the first read: identity and entities in one statement, so one round
# trip and one snapshot; PostgreSQL joins the page.
SMALL_PULL_SQL = """SELECT (SELECT max(seq) FROM changes), generation, restore_uuid,
    restore_offset, page.entities, page.count FROM store_identity,
    (SELECT string_agg(entity, ',' ORDER BY seq) AS entities, count(*) AS count FROM
        (SELECT seq, entity FROM changes WHERE seq > %s ORDER BY seq LIMIT %s) AS rows) AS page"""

# Many orders in one statement: the change-tracking triggers run once per statement and
# record the whole batch set-based (schema_postgresql.sql), so one statement per batch.
# It answers how many rows it inserted (xmax is 0 only in a row version no one replaced).
UPSERT_SQL = """WITH written AS (INSERT INTO orders (id, username, orders, total_sum)
SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::numeric[])
ON CONFLICT (id) DO UPDATE SET username = excluded.username, orders = excluded.orders,
total_sum = excluded.total_sum RETURNING xmax = 0 AS inserted)
SELECT count(*) FILTER (WHERE inserted) FROM written"""
# A write that PostgreSQL aborts to break a deadlock or a serialization conflict (with a
# program writing the same rows in another order) is run again, this many times in all.
WRITE_ATTEMPTS = 5


@contextmanager
def _translated_errors() -> Iterator[None]:
    try:
        yield
    except PoolTimeout as error:
        raise StoreUnavailable("the database cannot be reached") from error
    except psycopg.errors.IntegrityError as error:
        raise StoreRejected("the database rejected the order (a constraint failed)") from error
    except psycopg.errors.QueryCanceled as error:
        raise StoreUnavailable("the database did not answer in time") from error
    except psycopg.errors.UndefinedTable as error:
        raise StoreUnavailable("the database has no schema; run the migration") from error
    except psycopg.errors.ReadOnlySqlTransaction as error:
        raise StoreUnavailable("the database is read-only") from error
    except psycopg.errors.SequenceGeneratorLimitExceeded as error:
        raise StoreUnavailable("the change counter has reached 2**53") from error
    except psycopg.Error as error:
        raise StoreUnavailable("the database failed") from error


class PostgresChunks:
    """One pull's reads (base.ChunkSource): the change log after `since` as one query,
    streamed. One statement is one snapshot, and PostgreSQL sends rows while the previous
    chunk goes to the client (flow control on the socket keeps memory flat however slowly
    the client reads)."""

    def __init__(self, pool: ConnectionPool):
        self._pool = pool
        with _translated_errors():
            self._connection = pool.getconn(timeout=POOL_TIMEOUT_S)
        self._released = False
        self._rows: Generator[str, None, None] | None = None

    def open(self, since: int, limit: int | None, rows: int,
             one_statement: bool) -> tuple[StoreIdentity, bytes, int]:
        with _translated_errors():
            # The pull manages its transaction itself, to save round trips.
            self._connection.autocommit = True
            if one_statement:
                return self._small_pull(since, rows)
            identity = self._open_stream(since, limit)
        return identity, *self.read(rows)

    def _small_pull(self, since: int, rows: int) -> tuple[StoreIdentity, bytes, int]:
        """One statement, its own snapshot, so no transaction. It ends before any byte
        goes out, so the 30 s statement timeout is right for it."""
        row = self._connection.execute(SMALL_PULL_SQL, (since, rows)).fetchone()
        entities, count = row[4:] if row else (None, 0)
        return _identity(row), entities.encode() if count else b"", count

    def _open_stream(self, since: int, limit: int | None) -> StoreIdentity:
        """A read-only transaction whose statements share one snapshot (REPEATABLE READ),
        so the identity read first describes exactly what the query streams. Its query
        may run as long as the client takes to read it: Sesam's own read timeout bounds a
        stream, not the 30 s meant for other statements. The first three statements go
        in one message, so one round trip."""
        cursor = self._connection.cursor()
        cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; "
                       f"SET LOCAL statement_timeout = {STREAM_TIMEOUT_MS}; {IDENTITY_SQL}")
        cursor.nextset()  # past the results of BEGIN and SET
        cursor.nextset()
        identity = _identity(cursor.fetchone())
        rows = self._connection.cursor(row_factory=scalar_row)
        # A generator, typed as an iterator by psycopg: close() cancels the query.
        self._rows = cast(Generator[str, None, None],
                          rows.stream(ENTITY_SQL, (since, limit), size=STREAM_FETCH_ROWS))
        return identity

    def read(self, rows: int) -> tuple[bytes, int]:
        stream = self._rows if self._rows is not None else iter(())  # a small pull has none
        with _translated_errors():
            entities = list(itertools.islice(stream, rows))
        return ",".join(entities).encode(), len(entities)

    def finish(self) -> None:
        if self._rows is not None:
            with _translated_errors():
                next(self._rows, None)  # past the last row: the query ends

    def close(self) -> None:
        if self._released:
            return
        self._released, connection = True, self._connection
        try:
            if self._rows is not None:
                self._rows.close()  # a query still running is cancelled
            connection.rollback()  # ends the read transaction and the SET LOCAL with it
            connection.autocommit = False
        except psycopg.Error:
            # Broken, or not reset: never lend it out like that (a write on an
            # autocommit connection would not be all or nothing). The pool replaces it.
            connection.close()
        self._pool.putconn(connection)


class PostgresTx:
    """A PostgreSQL transaction as the receiver and the verification use it
    (store/receiver.py, store/verify.py): their SQL is written with `?` placeholders,
    which their statements never hold otherwise."""

    ID_LIST = "SELECT unnest(?::bigint[])"

    def __init__(self, connection: psycopg.Connection, pipeline: psycopg.Pipeline | None = None):
        self.connection = connection
        self.pipeline = pipeline

    @staticmethod
    def id_list(ids: list[int]) -> list[int]:
        return ids

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.connection.execute(sql.replace("?", "%s"), params).fetchall()

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.connection.execute(sql.replace("?", "%s"), params)

    def count(self, sql: str, params: Sequence[Any] = ()) -> int:
        cursor = self.connection.execute(sql.replace("?", "%s"), params)
        if self.pipeline is not None:
            self.pipeline.sync()  # a pipelined statement's row count comes with its results
        return cursor.rowcount

    def upsert(self, orders: list[Order]) -> None:
        self.connection.execute(UPSERT_SQL, _upsert_columns(orders))

    def differences(self, low: int, high: int) -> list[tuple[int, bool, bool]]:
        return self.rows(CHUNK_DIFFS_FULL_JOIN, (low, high) * 2)

    def record_live(self, order_ids: list[int]) -> None:
        self.connection.execute(RECORD_LIVE_SQL, (order_ids,))

    def record_tombstones(self, order_ids: list[int]) -> None:
        self.connection.execute(RECORD_TOMBSTONES_SQL, (order_ids,))


class PostgresStore(BatchedLoads, Receiver, Verifier):
    def __init__(self, url: str, max_connections: int = 8):
        # Our settings go after any options the URL carries (e.g. a search_path). Generic
        # plans: every statement psycopg prepares here is a key lookup or a range scan of
        # a key, whose best plan does not depend on the values; PostgreSQL would otherwise
        # plan a small pull afresh on every call, which costs more than running it.
        options = " ".join(filter(None, [
            str(conninfo_to_dict(url).get("options") or ""),
            f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT_MS}",
            "-c plan_cache_mode=force_generic_plan"]))
        # No check on every checkout (a round trip per request): a connection that broke
        # fails its query, the pool discards it, and the client gets a 503.
        self.pool = ConnectionPool(
            url, min_size=1, max_size=max_connections, open=False,
            kwargs={"options": options, "connect_timeout": 5})
        # Open without waiting: a database that is down at start gives 503s and an
        # unhealthy /health until it is back, instead of a crash loop.
        self.pool.open(wait=False)

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        with _translated_errors(), self.pool.connection(timeout=POOL_TIMEOUT_S) as connection:
            yield connection  # commits on success, rolls back on error

    def _write(self, work: Callable[[psycopg.Connection], T]) -> T:
        """Run `work` in one transaction, all or nothing. The service's own writers take
        their row locks in one order (by id), so they cannot deadlock each other; another
        program may, and PostgreSQL then aborts one side: that transaction, rolled back
        whole, runs again instead of failing the request."""
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                with self._connection() as connection:
                    return work(connection)
            except StoreUnavailable as error:
                retry = isinstance(error.__cause__, (psycopg.errors.DeadlockDetected,
                                                     psycopg.errors.SerializationFailure))
                if not retry or attempt == WRITE_ATTEMPTS:
                    raise
                time.sleep(random.uniform(0, 0.05 * attempt))  # apart, so they meet no more
        raise AssertionError("unreachable")

    def migrate(self) -> None:
        with self._connection() as connection:
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            found, oldest_code = self._schema_version(connection)
            if newer_schema_allows(found, oldest_code, SCHEMA_VERSION):
                log.info("the database's schema is version %s, newer than this code's %s, "
                         "which it allows: used as it is", found, SCHEMA_VERSION)
                return
            # A current schema gets no DDL, whose locks would queue behind running writers
            # (and ALTER SEQUENCE would deadlock with them) at every worker's start.
            if found != SCHEMA_VERSION:
                connection.execute(_schema())
                connection.execute("DELETE FROM schema_version")
                connection.execute("INSERT INTO schema_version (version, oldest_code) VALUES (%s, %s)",
                                   (SCHEMA_VERSION, OLDEST_CODE))
            connection.execute("INSERT INTO store_identity (generation) SELECT %s "
                               "WHERE NOT EXISTS (SELECT FROM store_identity)",
                               (new_uuid(),))
        self._assert_tracking()  # at every start: someone may have disabled a trigger
        with self._connection() as connection:
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            self._check_location(connection)

    @staticmethod
    def _schema_version(connection: psycopg.Connection) -> tuple[int | None, int | None]:
        """The schema's version and the oldest code it allows (None, None: no schema yet)."""
        if _value(connection, "SELECT to_regclass('schema_version')") is None:
            return None, None
        row = connection.execute("SELECT to_jsonb(v) FROM schema_version v "
                                 "ORDER BY version DESC LIMIT 1").fetchone()
        return (row[0]["version"], row[0].get("oldest_code")) if row else (None, None)

    def load_if_empty(self, orders: Iterable[Order]) -> bool:
        batch = list(orders)

        def load(connection: psycopg.Connection) -> bool:
            connection.execute("LOCK TABLE orders IN EXCLUSIVE MODE")
            if _value(connection, "SELECT EXISTS (SELECT 1 FROM changes)"):
                return False
            _upsert(connection, batch)
            return True
        return self._write(load)

    def ping(self) -> None:
        with self._connection() as connection:
            connection.execute("SELECT count(*) FROM schema_version").fetchone()

    def open_changes(self, since: int, limit: int | None) -> ChangeStream:
        return ChangeStream(PostgresChunks(self.pool), since, limit)

    def record_restore(self, past: int = 0) -> Restore:
        with self._connection() as connection:
            return _record_restore(connection, past)

    def _check_location(self, connection: psycopg.Connection) -> None:
        """A store found in another cluster, database, table or timeline than it was last
        was restored (or copied) there: record a restore, as `python -m service restored`
        would, so a pipe at an offset the backup lacks is reset instead of missing changes."""
        here = _location(connection)
        recorded = _value(connection, "SELECT lives_in FROM store_identity")
        moved = sorted(key for key, value in (recorded or {}).items()
                       if value is not None and here.get(key) is not None and here[key] != value)
        if moved:
            restore = _record_restore(connection)
            log.warning("the store is not where it was (%s changed): a restore or a copy; recorded "
                        "as restored, so pipes past its offset reset", ", ".join(moved),
                        extra={"restore_uuid": restore.restore_uuid,
                               "restore_offset": restore.restore_offset, "was": recorded, "now": here})
        if recorded != here:
            connection.execute("UPDATE store_identity SET lives_in = %s", (Jsonb(here),))

    def get_order(self, order_id: int) -> str | None:
        with self._connection() as connection:
            row = connection.execute("SELECT order_document(o) FROM orders o WHERE o.id = %s",
                                     (order_id,)).fetchone()
        return row[0] if row else None

    def upsert_orders(self, orders: list[Order]) -> tuple[int, int]:
        created = self._write(lambda connection: _upsert(connection, orders))
        return created, len(orders) - created

    def delete_order(self, order_id: int) -> bool:
        return self._write(lambda connection: connection.execute(
            "DELETE FROM orders WHERE id = %s", (order_id,)).rowcount > 0)

    def _write_batch(self, batch: list[Order]) -> None:
        self._write(lambda connection: _upsert(connection, batch))

    def _receiving(self, work: Callable[[PostgresTx], T]) -> T:
        """The receiver's lock, then the one every writer of changes takes: no other write
        commits between the receiver's reading an order's version and writing Sesam's (or
        sweeping), so it never overwrites a version Sesam has not seen. A writer already
        waiting on that lock with a row the receiver wants is a deadlock PostgreSQL breaks,
        and _write runs the loser again."""
        def locked(connection: psycopg.Connection) -> T:
            # Pipelined: the locks go with the request's first read, its writes with the
            # pipeline's end. Serial round trips were most of a push request's time.
            with connection.pipeline() as pipeline:
                connection.execute("SELECT pg_advisory_xact_lock(%s), lock_changes()", (RECEIVER_LOCK,))
                return work(PostgresTx(connection, pipeline))
        return self._write(locked)

    def _reading(self, work: Callable[[PostgresTx], T]) -> T:
        with self._connection() as connection:
            return work(PostgresTx(connection))

    def _verifying(self, work: Callable[[PostgresTx], T]) -> T:
        def locked(connection: psycopg.Connection) -> T:
            connection.execute("SELECT lock_changes()")  # writers record no change meanwhile
            return work(PostgresTx(connection))
        return self._write(locked)

    _verifying_read = _reading

    def _assert_tracking(self, fix: bool = True) -> list[str]:
        """Triggers dropped are created again (the schema, under the migration lock);
        triggers disabled, or firing only in the origin role, fire ALWAYS again; the
        sequence's cache is 1. Each is looked at first: an ALTER takes a lock that blocks
        writers, and needs the table's owner. Say what was (or, not fixing, is) wrong."""
        done: list[str] = []
        with self._connection() as connection:
            triggers = dict(connection.execute(
                "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'orders'::regclass "
                "AND NOT tgisinternal").fetchall())
            cache = _value(connection, "SELECT seqcache FROM pg_sequence WHERE seqrelid = 'change_seq'::regclass")
        missing = sorted(set(TRIGGERS) - set(triggers))
        not_always = sorted(name for name in TRIGGERS if name in triggers and triggers[name] != "A")
        done += [f"the trigger {name} was dropped" for name in missing]
        done += [f"the trigger {name} was {TRIGGER_STATES.get(triggers[name], triggers[name])}"
                 for name in not_always if name not in missing]
        done += [f"the change sequence cached {cache} values"] if cache != 1 else []
        if not fix or not done:
            return done
        try:
            if missing:
                self._run_schema()  # creates them firing ALWAYS, the cache at 1
            elif not_always or cache != 1:
                with self._connection() as connection:
                    if not_always:
                        connection.execute("ALTER TABLE orders " + ", ".join(
                            f"ENABLE ALWAYS TRIGGER {name}" for name in not_always))
                    if cache != 1:
                        connection.execute("ALTER SEQUENCE change_seq CACHE 1")
        except StoreUnavailable as error:
            if isinstance(error.__cause__, psycopg.errors.InsufficientPrivilege):
                raise StoreUnavailable("the change tracking is off (triggers dropped or disabled) "
                                       "and only the owner of the orders table can put it back: "
                                       "run `python -m service verify` as the owner") from error
            raise
        log.warning("change tracking put back: %s", "; ".join(done))
        return done

    def _run_schema(self) -> None:
        with self._connection() as connection:
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            connection.execute(_schema())

    def _note_delivered(self, max_updated: int) -> None:
        with self._connection() as connection:
            connection.execute("UPDATE feed_delivered SET max_updated = %s WHERE max_updated < %s",
                               (max_updated, max_updated))

    def close(self) -> None:
        self.pool.close()


def _record_restore(connection: psycopg.Connection, past: int = 0) -> Restore:
    restore_uuid = new_uuid()
    connection.execute("SELECT lock_changes()")  # no writer draws values meanwhile
    offset = _value(connection, "SELECT max(seq) FROM changes")
    connection.execute("UPDATE store_identity SET restore_uuid = %s, restore_offset = %s",
                       (restore_uuid, offset))
    counter = _value(connection,
                     "SELECT setval('change_seq', greatest(last_value, %s, clock_us() + %s)) "
                     "FROM change_seq", (past, RESTORE_MARGIN_US))
    return Restore(restore_uuid, offset, counter)


def _location(connection: psycopg.Connection) -> dict[str, Any]:
    """Where the store lives now. The cluster's system identifier and timeline need
    pg_control_system() and pg_control_checkpoint(), which a database may not grant:
    then the oids alone tell a restore into another database or a dump loaded again."""
    here: dict[str, Any] = dict(zip(("database_oid", "table_oid"), connection.execute(
        "SELECT (SELECT oid FROM pg_database WHERE datname = current_database())::bigint, "
        "'orders'::regclass::oid::bigint").fetchone() or ()))
    for key, query in (("system_id", "SELECT system_identifier::text FROM pg_control_system()"),
                       ("timeline", "SELECT timeline_id FROM pg_control_checkpoint()")):
        try:
            with connection.transaction():  # a savepoint: a refusal leaves the rest alone
                here[key] = _value(connection, query)
        except psycopg.errors.InsufficientPrivilege:
            here[key] = None
    return here


def _schema() -> str:
    return resources.files(__package__).joinpath("schema_postgresql.sql").read_text()


def _value(connection: psycopg.Connection, query: str, params: tuple = ()) -> Any:
    """The one value of a query that always returns one row (an aggregate, a setval)."""
    row = connection.execute(query, params).fetchone()
    if row is None:
        raise StoreUnavailable("the database failed")
    return row[0]


def _identity(row: tuple | None) -> StoreIdentity:
    if row is None:
        raise StoreUnavailable("the database has no store identity; run the migration")
    max_updated, generation, restore_uuid, restore_offset = row[:4]
    return StoreIdentity(generation, restore_uuid, restore_offset, max_updated)


def _upsert(connection: psycopg.Connection, orders: Iterable[Order]) -> int:
    """Create or replace the orders in one statement; return how many it created. One
    statement cannot write a row twice, so of orders sharing an id the last one wins, as
    it would written one by one. Rows are written, and so locked, in the order of their
    ids: two batches sharing ids wait for each other instead of deadlocking."""
    return _value(connection, UPSERT_SQL, _upsert_columns(orders))


def _upsert_columns(orders: Iterable[Order]) -> tuple[list, list, list, list]:
    latest = sorted({order.id: order for order in orders}.values(), key=lambda order: order.id)
    return ([order.id for order in latest], [order.username for order in latest],
            [order.orders for order in latest], [order.total_sum for order in latest])
