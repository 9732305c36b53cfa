"""The cost of the feed's verification (store/verify.py), as `make bench` measures it: a
full `verify` of a store of N orders whose feed is true, and then of the same store after
1% of the orders were changed around the triggers (so found and repaired). Its CPU is
the verifying process's (the service's code, run in process) and, on PostgreSQL, every
process of the database server's: the target is at most 1 CPU-second per million orders
for the two together."""
from __future__ import annotations

import time

from service.store import open_store
from tests.bench.markdown import markdown_table
from tests.support.databases import plain_sql
from tests.support.memory import cpu_seconds, process_tree

TARGET_CPU_PER_MILLION = 1.0


def database_pids(url: str) -> list[int]:
    """The PostgreSQL server's processes (the postmaster's tree) but its autovacuum
    workers, which clean up after earlier writes (the push before the verification leaves
    a million dead rows in push_seen) and are no part of it; none for SQLite."""
    if not url.startswith("postgresql"):
        return []
    with plain_sql(url) as connection:  # its backend's parent, while the backend lives
        backend = connection.execute("SELECT pg_backend_pid()").fetchone()[0]
        with open(f"/proc/{backend}/stat") as stat:
            postmaster = int(stat.read().rsplit(")", 1)[1].split()[1])
    return [pid for pid in process_tree(postmaster) if "autovacuum worker" not in _command(pid)]


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().decode(errors="replace")
    except OSError:
        return ""


def timed_verify(url: str, count: int) -> dict:
    store = open_store(url)
    try:
        store.ping()  # its connection, the one the verification uses, is then listed below
        pids = database_pids(url)
        database_before, own_before = cpu_seconds(pids), time.process_time()
        started = time.perf_counter()
        result = store.verify()
        seconds = time.perf_counter() - started
        cpu = time.process_time() - own_before + cpu_seconds(pids) - database_before
    finally:
        store.close()
    return {"seconds": seconds, "cpu_per_million": cpu / count * 1e6,
            "differences": result.differences}


def bench_verify(url: str, backend: str, count: int) -> dict:
    """Verify a true feed, then one with 1% of the orders changed behind the triggers."""
    clean = timed_verify(url, count)
    with plain_sql(url) as connection:
        if backend == "postgresql":
            connection.execute("SET session_replication_role = replica")
            connection.execute("ALTER TABLE orders DISABLE TRIGGER orders_track_update")
        else:
            connection.execute("DROP TRIGGER orders_track_update")
        connection.execute("UPDATE orders SET username = username || '-x' WHERE id - 100 * (id / 100) = 5")
        if backend == "postgresql":
            connection.execute("ALTER TABLE orders ENABLE ALWAYS TRIGGER orders_track_update")
    damaged = timed_verify(url, count)
    result = {"backend": backend, "orders": count, "clean": clean, "repair": damaged}
    print(f"   verify: {result}", flush=True)
    return result


def table(results: list[dict]) -> str:
    rows = [[r["backend"], f"{r['orders']:,}", f"{r['clean']['seconds']:.2f}",
             f"{r['clean']['cpu_per_million']:.2f}", f"{r['repair']['seconds']:.2f}",
             f"{r['repair']['cpu_per_million']:.2f}", f"{r['repair']['differences']:,}"]
            for r in results]
    return markdown_table(["backend", "orders", "verify s", "CPU-s per M", "1% repaired: s",
                           "CPU-s per M", "differences"], rows)


def verdict(results: list[dict]) -> str:
    lines = []
    for r in results:
        if r["orders"] < 1_000_000:
            continue
        cpu = r["clean"]["cpu_per_million"]
        lines.append(f"- verify, {r['backend']}: {cpu:.2f} CPU-s per million orders, the service's "
                     f"and the database's (<= {TARGET_CPU_PER_MILLION:g}): "
                     f"{'met' if cpu <= TARGET_CPU_PER_MILLION else 'NOT met'}")
    return "\n".join(lines)


