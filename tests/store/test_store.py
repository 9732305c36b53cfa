"""The stores (SQLite and PostgreSQL): change tracking in the database, whoever writes."""
import itertools
import json
import shutil
import sqlite3
import subprocess
import sys
import threading

import pytest

from service.store import Order, StoreRejected, StoreUnavailable
from service.store.base import CHUNK_ROWS
from service.store.sqlite import SqliteStore
from tests.support.databases import plain_sql


def order(order_id, name="ann", total="10"):
    return Order(order_id, name, "Thinkpad", total)


def changes(store, since=0, limit=None):
    stream = store.open_changes(since, limit)
    try:
        return [entity for text, _ in stream.chunks() for entity in json.loads(b"[" + text + b"]")]
    finally:
        stream.close()


def sequence(entities):
    return [entity["_updated"] for entity in entities]


def increasing(values):
    """Strictly increasing, so unique: what every stream's `_updated` values must be."""
    return all(a < b for a, b in itertools.pairwise(values))


def last_updated(store):
    """The `_updated` of the newest change: a pipe's offset after a full read."""
    return changes(store)[-1]["_updated"]


@pytest.fixture
def sqlite_store(tmp_path):
    store = SqliteStore(str(tmp_path / "sub" / "orders.sqlite3"))
    store.migrate()
    return store


def test_migrate_is_idempotent(any_store, database_url, backend):
    any_store.migrate()
    with plain_sql(database_url) as connection:
        assert connection.execute("SELECT version FROM schema_version").fetchall() \
            == [({"sqlite": 4, "postgresql": 5}[backend],)]


def test_sqlite_uses_wal(sqlite_store):
    with sqlite3.connect(sqlite_store.path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_every_write_takes_a_new_higher_sequence_value(any_store):
    any_store.upsert_orders([order(1), order(2)])
    first = last_updated(any_store)
    any_store.upsert_orders([order(1, "bob")])
    any_store.delete_order(2)
    entities = changes(any_store)
    assert [e["_id"] for e in entities] == ["1", "2"]
    assert first < entities[0]["_updated"] < entities[1]["_updated"]
    assert entities[0]["Username"] == "bob"
    assert entities[1] == {"_id": "2", "_updated": entities[1]["_updated"], "_deleted": True}


def test_an_update_that_changes_nothing_records_nothing(any_store):
    any_store.upsert_orders([order(1)])
    before = changes(any_store)
    assert any_store.upsert_orders([order(1)]) == (0, 1)
    assert changes(any_store) == before


def test_a_recreated_order_replaces_its_tombstone(any_store):
    any_store.upsert_orders([order(1)])
    assert any_store.delete_order(1)
    deleted = last_updated(any_store)
    assert not any_store.delete_order(1)
    assert last_updated(any_store) == deleted  # deleting nothing records nothing
    assert any_store.upsert_orders([order(1, "again")]) == (1, 0)
    [entity] = changes(any_store)
    assert entity["_updated"] > deleted and "_deleted" not in entity
    assert entity["Username"] == "again"


def test_sequence_values_are_never_reused(any_store):
    any_store.upsert_orders([order(1), order(2)])
    one, two = sequence(changes(any_store))
    any_store.upsert_orders([order(2, "x")])  # a new value replaces order 2's
    any_store.upsert_orders([order(3)])
    values = sequence(changes(any_store))
    assert values[0] == one and two not in values and increasing([two] + values[1:])


def test_since_and_limit(any_store):
    any_store.bulk_load(order(i) for i in range(1, 26))
    full = sequence(changes(any_store))
    assert len(full) == 25 and increasing(full)
    assert sequence(changes(any_store, since=full[20])) == full[21:]
    assert sequence(changes(any_store, since=full[19], limit=3)) == full[20:23]
    assert changes(any_store, since=full[-1]) == []


def test_a_stream_reads_one_snapshot_while_others_write(any_store):
    """Orders changed, deleted and created after a stream opened are not in it: every
    chunk comes from the snapshot of its first read, however many chunks there are."""
    total = 2 * CHUNK_ROWS + 50
    any_store.bulk_load(order(i) for i in range(1, total + 1))
    stream = any_store.open_changes(0, None)
    try:
        chunks = stream.chunks()
        first_text, first_count = next(chunks)
        any_store.upsert_orders([order(total, name="changed"), order(total + 1)])
        assert any_store.delete_order(total - 1)
        texts = [first_text] + [text for text, _ in chunks]
        assert stream.exhausted
    finally:
        stream.close()
    entities = json.loads(b"[" + b",".join(texts) + b"]")
    assert first_count < total and len(entities) == total and increasing(sequence(entities))
    assert [e["Username"] for e in entities[-2:]] == ["ann", "ann"]
    later = changes(any_store, since=entities[-1]["_updated"])
    assert [(e["_id"], e.get("_deleted", False)) for e in later] == [
        (str(total), False), (str(total + 1), False), (str(total - 1), True)]


@pytest.mark.parametrize("since, limit, exhausted", [
    (0, 5, True),                    # the limit fits the first read
    (0, None, False),                # more rows than the first read takes
    (2 * CHUNK_ROWS, None, True),    # the tail is shorter than the first read
    (2 * CHUNK_ROWS + 10, None, True),  # nothing after since
])
def test_a_stream_knows_when_it_has_read_everything(any_store, since, limit, exhausted):
    """`since` counts changes here: the stream starts after the since-th one."""
    any_store.bulk_load(order(i) for i in range(1, 2 * CHUNK_ROWS + 11))
    full = sequence(changes(any_store))
    stream = any_store.open_changes(full[since - 1] if since else 0, limit)
    try:
        assert stream.exhausted is exhausted
        assert sum(count for _, count in stream.chunks()) == min(limit or 10**9, max(0, 2 * CHUNK_ROWS + 10 - since))
        assert stream.exhausted
    finally:
        stream.close()


def test_exact_decimals_come_back_as_numbers_with_their_scale(any_store):
    any_store.upsert_orders([order(1, total="12.10"), order(2, total="0.30")])
    raw = any_store.get_order(1)
    assert '"TotalSum":12.10' in raw
    assert json.loads(any_store.get_order(2), parse_float=str)["TotalSum"] == "0.30"


def test_writes_with_plain_sql_are_tracked_like_service_writes(any_store, database_url):
    any_store.upsert_orders([order(1), order(2)])
    mark = last_updated(any_store)
    with plain_sql(database_url) as connection:  # another program, with the database's own driver
        connection.execute("INSERT INTO orders VALUES (3, 'carl', 'Mac', 99.5)")
        connection.execute("UPDATE orders SET username = 'anna' WHERE id = 1")
        connection.execute("DELETE FROM orders WHERE id = 2")
    entities = changes(any_store, since=mark)
    assert [e["_id"] for e in entities] == ["3", "1", "2"] and increasing([mark] + sequence(entities))
    assert entities[0]["TotalSum"] == 99.5 and entities[1]["Username"] == "anna"
    assert entities[2]["_deleted"] is True


def test_one_statement_writing_many_rows_tracks_each_row(any_store, database_url):
    """PostgreSQL records a statement's changes together, SQLite row by row: either way
    every row a statement really changed gets one new sequence value, and no other row."""
    any_store.upsert_orders([order(1), order(2), order(3), order(4)])
    untouched, mark = changes(any_store)[3], last_updated(any_store)
    with plain_sql(database_url) as connection:
        connection.execute("UPDATE orders SET username = CASE WHEN id = 1 THEN 'anna' "
                           "ELSE username END")  # changes order 1 only
        connection.execute("UPDATE orders SET id = id + 10 WHERE id IN (2, 3)")
        connection.execute("INSERT INTO orders VALUES (5, 'eve', 'Pixel', 5), (6, 'fay', 'Pixel', 6)")
        connection.execute("DELETE FROM orders WHERE id IN (13, 6)")
    entities = changes(any_store, since=mark)
    # 9 changes (order 1; 2 and 3 moved: 4; two inserts; two deletes); an order changed
    # twice keeps its latest value only.
    assert increasing([mark] + sequence(entities))
    state = {e["_id"]: e.get("_deleted", False) for e in entities}
    assert state == {"1": False, "2": True, "3": True, "12": False, "13": True, "5": False,
                     "6": True}
    assert changes(any_store, since=0, limit=1) == [untouched]
    assert json.loads(any_store.get_order(12))["Username"] == "ann"


def test_a_bulk_batch_may_repeat_an_id_and_the_last_one_wins(any_store):
    assert any_store.bulk_load([order(1, "first"), order(2), order(1, "last")]) == 3
    assert json.loads(any_store.get_order(1))["Username"] == "last"
    assert sorted(e["_id"] for e in changes(any_store)) == ["1", "2"]


def test_writes_from_another_process_are_tracked(sqlite_store):
    sqlite_store.upsert_orders([order(1)])
    mark = last_updated(sqlite_store)
    script = f"""
import sqlite3
c = sqlite3.connect({str(sqlite_store.path)!r}, isolation_level=None)
c.execute("INSERT INTO orders VALUES (3, 'carl', 'Mac', '1')")
"""
    subprocess.run([sys.executable, "-c", script], check=True)
    assert [e["_id"] for e in changes(sqlite_store, since=mark)] == ["3"]


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="the sqlite3 shell is not installed")
def test_writes_from_the_sqlite3_shell_are_tracked(sqlite_store):
    sqlite_store.upsert_orders([order(1)])
    mark = last_updated(sqlite_store)
    subprocess.run(["sqlite3", str(sqlite_store.path),
                    ("INSERT INTO orders VALUES (5, 'eve', 'Pixel', '7.25');"
                    "UPDATE orders SET id = 6 WHERE id = 1;")], check=True)
    entities = changes(sqlite_store, since=mark)
    assert [(e["_id"], e.get("_deleted", False)) for e in entities] == [
        ("5", False), ("1", True), ("6", False)]
    assert increasing([mark] + sequence(entities))


@pytest.mark.parametrize("sql", [
    "INSERT INTO orders VALUES (0, 'a', 'b', '1')",
    "INSERT INTO orders VALUES (1, '~t2020', 'b', '1')",
    "INSERT INTO orders VALUES (1, 'a', 'b', 'abc')",
    "INSERT INTO orders VALUES (1, 'a', 'b', '-5')",
    "INSERT INTO orders VALUES (1, 'a', 'b', '\"5\"')",
    "INSERT INTO orders VALUES (1, X'41', 'b', '5')",
])
def test_the_database_refuses_rows_it_could_not_serve(any_store, database_url, backend, sql):
    if backend == "postgresql" and "X'41'" in sql:
        sql = "INSERT INTO orders VALUES (1, 'a', 'b', 'NaN')"
    with plain_sql(database_url) as connection, pytest.raises(Exception) as error:
        connection.execute(sql)
    assert "constraint" in str(error.value).lower() or "invalid input" in str(error.value).lower()
    assert changes(any_store) == []


def test_a_batch_is_all_or_nothing(any_store):
    any_store.upsert_orders([order(1)])
    before = changes(any_store)
    with pytest.raises(StoreRejected):
        any_store.upsert_orders([order(2), Order(3, "~bad", "x", "1")])
    assert changes(any_store) == before and any_store.get_order(2) is None


def test_load_if_empty_loads_once(any_store):
    assert any_store.load_if_empty([order(1), order(2)])
    any_store.delete_order(1)
    any_store.delete_order(2)
    assert not any_store.load_if_empty([order(1), order(2)])  # not resurrected
    assert all(e.get("_deleted") for e in changes(any_store))


def test_a_missing_schema_is_unavailable_not_a_crash(tmp_path):
    store = SqliteStore(str(tmp_path / "empty.sqlite3"))
    with pytest.raises(StoreUnavailable, match="no schema"):
        store.ping()
    with pytest.raises(StoreUnavailable):
        store.open_changes(0, None)


def test_a_read_only_database_refuses_writes_clearly(sqlite_store, tmp_path):
    sqlite_store.upsert_orders([order(1)])
    before = changes(sqlite_store)
    read_only = SqliteStore(f"file:{sqlite_store.path}?mode=ro")
    read_only._connect = lambda: sqlite3.connect(f"file:{sqlite_store.path}?mode=ro", uri=True,
                                                 isolation_level=None)
    with pytest.raises(StoreUnavailable, match="read-only"):
        read_only.upsert_orders([order(2)])
    assert changes(sqlite_store) == before


def test_bulk_load_reports_count_and_tracks_everything(any_store):
    assert any_store.bulk_load((order(i) for i in range(1, 2501)), batch_size=1000) == 2500
    entities = changes(any_store)
    assert len(entities) == 2500 and increasing(sequence(entities))
    assert [e["_id"] for e in entities] == [str(i) for i in range(1, 2501)]


def test_a_postgres_server_that_is_down_is_unavailable_not_a_crash(monkeypatch):
    from service.store.postgresql import PostgresStore
    from tests.support.servers import free_port
    monkeypatch.setattr("service.store.postgresql.POOL_TIMEOUT_S", 1.0)  # not 5 s per call
    store = PostgresStore(f"postgresql://nobody:nothing@127.0.0.1:{free_port()}/none")
    try:
        with pytest.raises(StoreUnavailable, match="cannot be reached"):
            store.ping()
        with pytest.raises(StoreUnavailable):
            store.open_changes(0, None)
    finally:
        store.close()


def test_a_new_scale_of_an_equal_sum_is_a_change(any_store):
    any_store.upsert_orders([order(1, total="8000")])
    first = last_updated(any_store)
    any_store.upsert_orders([order(1, total="8000.0")])
    assert last_updated(any_store) > first
    assert '"TotalSum":8000.0' in any_store.get_order(1)


def test_invalid_utf8_from_another_program_is_served_as_valid_json(sqlite_store):
    """The feed stays valid for every client, and the order stays readable: SQLite keeps
    any bytes as TEXT and cannot refuse them."""
    sqlite_store.upsert_orders([order(1, "ann")])
    with sqlite3.connect(sqlite_store.path, isolation_level=None) as connection:
        connection.execute("INSERT INTO orders VALUES (5006, CAST(x'ff' AS TEXT), 'Pi' || "
                           "CAST(x'c3' AS TEXT), '1')")
        connection.execute("INSERT INTO orders VALUES (5007, 'ctrl' || char(1, 31, 34, 92), 'o', '2')")
    stream = sqlite_store.open_changes(0, None)
    body = b"[" + b",".join(text for text, _ in stream.chunks()) + b"]"
    stream.close()
    entities = json.loads(body.decode("utf-8", "strict"))  # strict: no replacement here
    assert [e["Username"] for e in entities] == ["ann", "\ufffd", "ctrl\x01\x1f\"\\"]
    assert entities[1]["Orders"] == "Pi\ufffd"
    assert json.loads(sqlite_store.get_order(5006))["Username"] == "\ufffd"



def test_batches_of_the_same_orders_in_opposite_orders_never_fail(any_store):
    """Two clients posting the same 2,000 ids, one ascending and one descending, at once:
    each batch is written whole; neither is refused (PostgreSQL once deadlocked here)."""
    ids = list(range(1, 2001))
    batches = [[order(i, f"up{round_}") for i in ids] for round_ in range(3)]
    reversed_batches = [[order(i, f"down{round_}") for i in reversed(ids)] for round_ in range(3)]
    failures: list[BaseException] = []

    def post(work):
        for batch in work:
            try:
                any_store.upsert_orders(batch)
            except BaseException as error:  # noqa: BLE001 - collected for the assertion
                failures.append(error)

    threads = [threading.Thread(target=post, args=(work,)) for work in (batches, reversed_batches)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    names = {json.loads(any_store.get_order(i))["Username"] for i in (1, 1000, 2000)}
    assert len(names) == 1 and names <= {"up2", "down2"}  # each batch whole: one writer last


def test_created_and_updated_are_counted_by_what_the_write_found(any_store):
    assert any_store.upsert_orders([order(1), order(2)]) == (2, 0)
    assert any_store.upsert_orders([order(2), order(3), order(3)]) == (1, 2)


@pytest.mark.slow
def test_a_writer_queues_behind_a_long_write_instead_of_failing(sqlite_store):
    """Another program holds SQLite's write lock for 6 s (more than the old 5 s bound):
    the service's write waits for it and succeeds."""
    sqlite_store.upsert_orders([order(1)])
    holder = sqlite3.connect(sqlite_store.path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE orders SET username = 'held' WHERE id = 1")
    release = threading.Timer(6.0, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        assert sqlite_store.upsert_orders([order(2)]) == (1, 0)
    finally:
        release.join()
        holder.close()
    assert json.loads(sqlite_store.get_order(1))["Username"] == "held"
