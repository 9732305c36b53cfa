"""The feed proves itself against the table (store/verify.py): writes that go around the
triggers are found and repaired, and a pipe following the feed ends with the table."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from service.store import Order
from tests.sesam_emulator import Pipe, PipeConfig
from tests.support.apps import client_transport
from tests.support.databases import live_orders, plain_sql
from tests.support.servers import ROOT


def load(store, ids) -> None:
    store.bulk_load(Order(i, f"user{i}", "Thinkpad", "12.10") for i in ids)


def followed(pipe: Pipe) -> dict[str, tuple]:
    """What the pipe holds, in live_orders' shape."""
    pipe.run()
    return {key: (e["Username"], e["Orders"], float(e["TotalSum"])) for key, e in pipe.state.live().items()}


@pytest.fixture
def pipe(client):
    return Pipe(client_transport(client), PipeConfig(page_size=1000))


def test_a_store_whose_feed_is_true_verifies_clean(store):
    load(store, range(1, 2501))
    result = store.verify()
    assert (result.orders, result.differences, result.tracking) == (2500, 0, [])


def test_writes_around_the_disabled_triggers_are_found_and_repaired(store, database_url, backend, pipe):
    load(store, range(1, 101))
    pipe.run()
    with plain_sql(database_url) as connection:
        if backend == "postgresql":
            connection.execute("ALTER TABLE orders DISABLE TRIGGER ALL")
        else:  # SQLite cannot disable a trigger: it is dropped, and created again
            connection.execute("DROP TRIGGER orders_track_update")
            connection.execute("DROP TRIGGER orders_track_delete")
            connection.execute("DROP TRIGGER orders_track_insert")
        connection.execute("UPDATE orders SET username = 'changed' WHERE id <= 3")
        connection.execute("DELETE FROM orders WHERE id BETWEEN 10 AND 14")
        connection.execute("INSERT INTO orders VALUES (500, 'new', 'Pixel', '1')")
        if backend == "postgresql":
            connection.execute("ALTER TABLE orders ENABLE TRIGGER ALL")
        else:
            schema = (ROOT / "service" / "store" / "schema_sqlite.sql").read_text()
            connection.executescript(schema.split("-- @triggers\n", 1)[1])
    assert followed(pipe) != live_orders(database_url)  # the feed lies
    dry = store.verify(repair=False)
    assert (dry.missing, dry.stale, dry.orphaned) == (1, 3, 5)
    assert dry.examples == {"missing": [500], "stale": [1, 2, 3], "orphaned": [10, 11, 12, 13, 14]}
    result = store.verify()
    assert (result.missing, result.stale, result.orphaned) == (1, 3, 5) and result.repaired
    if backend == "postgresql":  # ENABLE TRIGGER set them back to the origin role only
        assert any("origin role" in problem for problem in result.tracking)
    assert store.verify().differences == 0
    assert followed(pipe) == live_orders(database_url)  # incrementally: the repair's changes


def untracked(connection, backend: str, sql: str) -> None:
    """Run `sql` around the triggers, and put them back."""
    if backend == "postgresql":
        connection.execute("ALTER TABLE orders DISABLE TRIGGER ALL")
        connection.execute(sql)
        connection.execute("ALTER TABLE orders ENABLE TRIGGER ALL")  # the verification puts ALWAYS back
    else:
        for trigger in ("insert", "update", "delete"):
            connection.execute(f"DROP TRIGGER orders_track_{trigger}")
        connection.execute(sql)
        schema = (ROOT / "service" / "store" / "schema_sqlite.sql").read_text()
        connection.executescript(schema.split("-- @triggers\n", 1)[1])


def test_a_value_changed_only_in_its_text_is_found(store, database_url, backend):
    """The comparison is of the values the entity was made from, TotalSum as its text:
    12.10 rewritten as 12.1 is served differently, so it is a difference to repair."""
    load(store, range(1, 11))
    with plain_sql(database_url) as connection:
        untracked(connection, backend, "UPDATE orders SET total_sum = '12.1' WHERE id = 4")
        untracked(connection, backend, "UPDATE orders SET orders = 'Thinkpad ' WHERE id = 6")
    dry = store.verify(repair=False)
    assert (dry.missing, dry.stale, dry.orphaned, dry.examples["stale"]) == (0, 2, 0, [4, 6])
    assert store.verify().stale == 2 and store.verify().differences == 0
    assert json.loads(store.get_order(4))["TotalSum"] == 12.1


def test_a_feed_from_before_the_kept_values_is_verified_after_the_upgrade(store, database_url, backend):
    """Changes from before the schema kept their values get them in the migration, where
    their entity is the one the order makes; a change that differed still differs."""
    load(store, range(1, 51))
    with plain_sql(database_url) as connection:
        connection.execute("UPDATE changes SET entity = replace(entity, 'user7\"', 'other\"') WHERE order_id = 7")
        if backend == "postgresql":
            connection.execute("ALTER TABLE changes DROP COLUMN username, DROP COLUMN orders, "
                               "DROP COLUMN total_sum")
            connection.execute("UPDATE schema_version SET version = 4")
        else:
            connection.executescript(
                "CREATE TABLE old AS SELECT seq, order_id, entity FROM changes; DROP TABLE changes; "
                "CREATE TABLE changes (seq INTEGER PRIMARY KEY, order_id INTEGER NOT NULL UNIQUE, "
                "entity TEXT NOT NULL); INSERT INTO changes SELECT * FROM old; DROP TABLE old; "
                "UPDATE schema_version SET version = 3;")
    store.migrate()
    with plain_sql(database_url) as connection:
        assert connection.execute("SELECT order_id FROM changes WHERE username IS NULL").fetchall() == [(7,)]
    dry = store.verify(repair=False)
    assert (dry.missing, dry.stale, dry.orphaned, dry.examples["stale"]) == (0, 1, 0, [7])
    assert store.verify().stale == 1 and store.verify().differences == 0


def test_writes_of_a_replica_session_are_tracked(store, database_url, backend, pipe):
    if backend != "postgresql":
        pytest.skip("session_replication_role is PostgreSQL's")
    load(store, range(1, 11))
    pipe.run()
    with plain_sql(database_url) as connection:
        connection.execute("ALTER TABLE orders DISABLE TRIGGER ALL")
        connection.execute("ALTER TABLE orders ENABLE TRIGGER ALL")  # back to the origin role
    assert store.verify().tracking  # put back: every trigger fires ALWAYS again
    with plain_sql(database_url) as connection:
        connection.execute("SET session_replication_role = replica")
        connection.execute("INSERT INTO orders VALUES (20, 'replica', 'Pixel', '2')")
        connection.execute("UPDATE orders SET orders = 'replicated' WHERE id = 1")
        connection.execute("DELETE FROM orders WHERE id = 2")
    assert store.verify(repair=False).differences == 0  # the triggers recorded all of it
    assert followed(pipe) == live_orders(database_url)


def test_truncate_leaves_a_tombstone_for_every_order(store, database_url, backend, pipe):
    if backend != "postgresql":
        pytest.skip("SQLite has no TRUNCATE (its DELETE without WHERE fires the triggers)")
    load(store, range(1, 3001))
    assert len(followed(pipe)) == 3000
    with plain_sql(database_url) as connection:
        connection.execute("TRUNCATE orders")
    assert followed(pipe) == {} == live_orders(database_url)
    assert store.verify(repair=False).differences == 0


def test_the_service_puts_the_tracking_back_when_it_starts(store, database_url, backend):
    if backend != "postgresql":
        pytest.skip("SQLite's migration creates its triggers at every start")
    with plain_sql(database_url) as connection:
        connection.execute("ALTER TABLE orders DISABLE TRIGGER orders_track_insert")
        connection.execute("ALTER SEQUENCE change_seq CACHE 20")
    store.migrate()  # what every start runs
    with plain_sql(database_url) as connection:
        states = connection.execute("SELECT DISTINCT tgenabled FROM pg_trigger WHERE "
                                    "tgrelid = 'orders'::regclass AND NOT tgisinternal").fetchall()
        assert states == [("A",)]
        assert connection.execute("SELECT seqcache FROM pg_sequence WHERE "
                                  "seqrelid = 'change_seq'::regclass").fetchone() == (1,)


def test_a_write_during_verification_is_neither_lost_nor_reported(store, database_url, pipe):
    load(store, range(1, 30_001))
    pipe.run()
    original = store._verifying
    writes = []

    def verifying_with_a_write_between_chunks(work):
        if len(writes) < 3:  # another program writes between the chunks
            order_id = 5000 * (len(writes) + 1)
            with plain_sql(database_url) as connection:
                connection.execute("UPDATE orders SET username = 'during' WHERE id = ?", (order_id,))
            writes.append(order_id)
        return original(work)
    store._verifying = verifying_with_a_write_between_chunks
    result = store.verify(chunk=7000)
    store._verifying = original
    assert result.differences == 0 and writes == [5000, 10000, 15000]
    assert followed(pipe) == live_orders(database_url)


def test_a_chunk_holds_at_most_its_size_of_orders_and_of_changes(store, database_url, backend, pipe):
    """Memory stays that of one chunk however the two tables differ: thousands of orphaned
    changes between two orders, thousands of orders with no change, orphans above the last
    order; each is found, in chunks of at most `chunk` differences."""
    load(store, [*range(1, 3001), *range(9001, 9601)])
    pipe.run()
    with plain_sql(database_url) as connection:
        untracked(connection, backend, "DELETE FROM orders WHERE id BETWEEN 2 AND 2999 OR id > 9000")
        untracked(connection, backend, "INSERT INTO orders SELECT id + 5000, username, orders, "
                                       "total_sum FROM orders WHERE id = 1")
        for _ in range(12):  # 4,096 orders, 5001..9096 (9001..9096 got orphaned changes back)
            untracked(connection, backend, "INSERT INTO orders SELECT id + (SELECT count(*) FROM orders "
                                           "WHERE id > 5000), username, orders, total_sum FROM orders WHERE id > 5000")
    original, sizes = store._verifying, []

    def verifying_with_sizes(work):
        def measured(tx):
            differences = tx.differences
            tx.differences = lambda low, high: sizes.append(len(found := differences(low, high))) or found
            return work(tx)
        return original(measured)
    store._verifying = verifying_with_sizes
    result = store.verify(chunk=500)
    store._verifying = original
    assert (result.orders, result.missing, result.stale) == (2 + 4096, 4096 - 96, 96)
    assert result.orphaned == 2998 + 504  # 9097..9600
    assert max(sizes) <= 500 and sum(sizes) == result.differences
    assert store.verify().differences == 0
    assert followed(pipe) == live_orders(database_url)


def test_verify_on_the_command_line_exits_by_what_it_found(store, database_url):
    load(store, range(1, 11))
    def run(*args):
        return subprocess.run([sys.executable, "-m", "service", "verify", *args], cwd=ROOT,
                              capture_output=True, text=True, check=False, timeout=60,
                              env={"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"})
    assert run().returncode == 0
    with plain_sql(database_url) as connection:
        connection.execute("DELETE FROM changes WHERE order_id = 4")
    dry = run("--dry-run")
    assert dry.returncode == 1 and "1 missing" in dry.stdout and "dry run" in dry.stdout
    fixed = run()
    assert fixed.returncode == 1 and "repaired" in fixed.stdout and "orders 4" in fixed.stdout
    assert run().returncode == 0
    broken = subprocess.run([sys.executable, "-m", "service", "verify"], cwd=ROOT, capture_output=True,
                            text=True, check=False, timeout=60,
                            env={"DATABASE_URL": "mysql://nope", "PATH": "/usr/bin:/bin"})
    assert broken.returncode == 2 and "could not run" in broken.stderr


def test_the_periodic_run_repairs_and_health_tells_it(make_app, database_url):
    app = make_app(VERIFY_INTERVAL_S="60")
    store, client = app.extensions["store"], app.test_client()
    load(store, [1, 2])
    with plain_sql(database_url) as connection:
        connection.execute("DELETE FROM changes WHERE order_id = 2")
    result = store.verify_if_due(60)
    assert result is not None and result.missing == 1
    assert store.verify_if_due(60) is None  # one run per interval, across every worker
    verification = json.loads(client.get("/health").data)["verification"]
    assert verification["missing"] == 1 and verification["examples"] == {"missing": [2], "stale": [], "orphaned": []}


@pytest.mark.slow
def test_the_service_repairs_the_feed_by_itself(database_url, tmp_path):
    """VERIFY_INTERVAL_S in the workers of a running service: a change deleted behind the
    service's back is back in the feed, and /health says what was found."""
    import time
    import urllib.request

    from tests.support.databases import load_into
    from tests.support.servers import start_gunicorn
    load_into(database_url, (Order(i, f"user{i}", "Thinkpad", "1") for i in range(1, 6)))
    with plain_sql(database_url) as connection:
        connection.execute("DELETE FROM changes WHERE order_id = 3")
    server = start_gunicorn(database_url, tmp_path, VERIFY_INTERVAL_S="1")
    try:
        deadline, found = time.monotonic() + 30, None
        while time.monotonic() < deadline and not found:
            with urllib.request.urlopen(f"{server.url}/health", timeout=5) as response:
                found = json.loads(response.read())["verification"]
            time.sleep(0.2)
        assert found and found["missing"] == 1 and found["examples"]["missing"] == [3]
        with urllib.request.urlopen(f"{server.url}/api/orders", timeout=5) as response:
            assert sorted(e["_id"] for e in json.loads(response.read())) == ["1", "2", "3", "4", "5"]
    finally:
        server.stop()
    assert '"message":"verification: the feed differed from the orders table (repaired)"' in server.log()
