"""The receiver under a full sync from Sesam, as `make bench` measures it.

The common case: the store already holds the orders, and Sesam's full sync sends them all
back with few changes. Seeded orders are loaded through the store's bulk path; a complete
pull marks them as seen by Sesam; then one serial client (as the sink is) sends a full
sequence in batches of 100 with an empty last batch: every order but 0.1% (which the
sweep at `is_last` deletes), 1% of them changed. The request bodies are encoded before the
clock starts, and sent on one kept-alive connection, so the client is not what is timed.
Measured: entities per second end to end, the last request (the sweep) alone, the server's
CPU seconds per million entities, peak memory (PSS; with Sesam's limits the cgroup's
anonymous memory and OOM kills), and incremental pulls made every 0.5 s during the sync.
"""
from __future__ import annotations

import http.client
import json
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from service.store import open_store
from tests.bench.markdown import markdown_table
from tests.bench.verify import bench_verify
from tests.support import cgroup
from tests.support.databases import fresh_database
from tests.support.postgres_cluster import ThrowawayCluster, server_programs
from tests.support.memory import MemorySampler, cpu_seconds, process_tree
from tests.support.seeded_orders import orders
from tests.support.servers import start_gunicorn

BATCH = 100
RECEIVER = "/api/receivers/orders/entities"
# On the 2-core machine, one serial client, PostgreSQL with its default durability.
TARGETS = {"sqlite": 40_000, "postgresql": 20_000}
SWEEP_SECONDS_PER_MILLION = 5.0
LIMIT_PEAK_MB, INCREMENTAL_SECONDS = 96, 1.0


def settle_postgres(url: str) -> None:
    """VACUUM ANALYZE after the load, as after any bulk load: otherwise autovacuum works
    through the new rows while the service is timed, on the same two cores."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE orders, changes")
    print(f"   VACUUM ANALYZE in {time.perf_counter() - started:.1f} s (not timed as load)", flush=True)


@contextmanager
def bench_database(backend: str, folder: Path) -> Iterator[str]:
    """SQLite as the service runs it; PostgreSQL in a cluster of its own with its default
    durability (the tests' throwaway cluster runs without fsync), or TEST_POSTGRES_URL's
    where the server programs are not installed (durability() says what it had)."""
    programs = server_programs() if backend == "postgresql" else None
    if programs is None:
        with fresh_database(backend, folder) as url:
            yield url
        return
    cluster = ThrowawayCluster(programs, durable=True)
    try:
        yield cluster.url
    finally:
        cluster.stop()


def durability(url: str) -> dict[str, str] | None:
    """PostgreSQL's settings that decide what a commit costs."""
    if not url.startswith("postgresql"):
        return None
    with psycopg.connect(url) as connection:
        return dict(connection.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('fsync', 'synchronous_commit', 'full_page_writes')").fetchall())


def bodies(count: int, seed: int) -> tuple[list[bytes], int, int]:
    """The sequence's request bodies, and how many orders it changes and leaves out."""
    batches: list[bytes] = []
    batch: list[dict] = []
    changed = left_out = 0
    for order in orders(count, seed):
        if order.id % 1000 == 7:  # Sesam no longer holds it: the sweep deletes it
            left_out += 1
            continue
        username = order.username
        if order.id % 100 == 3:
            username, changed = username + "-changed", changed + 1
        batch.append({"_id": str(order.id), "id": order.id, "Username": username,
                      "Orders": order.orders, "TotalSum": f"~f{order.total_sum}",
                      "_updated": order.id, "_hash": "0" * 32})
        if len(batch) == BATCH:
            batches.append(json.dumps(batch).encode())
            batch = []
    if batch:
        batches.append(json.dumps(batch).encode())
    batches.append(b"[]")  # the sink ends a full run with an empty batch
    return batches, changed, left_out


def send_sequence(port: int, batches: list[bytes]) -> tuple[float, float, dict]:
    """One full sequence, serially: (seconds in all, seconds of the last request, its answer)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    sequence, previous = str(uuid.uuid4()), None
    started = time.perf_counter()
    last_started, answer = started, {}
    for number, body in enumerate(batches):
        request_id = f"r{number}"
        query = f"sequence_id={sequence}&request_id={request_id}&is_full=true"
        query += "&is_first=true" if number == 0 else f"&previous_request_id={previous}"
        query += "&is_last=true" if number == len(batches) - 1 else ""
        last_started = time.perf_counter()
        connection.request("POST", f"{RECEIVER}?{query}", body=body,
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"request {number} answered {response.status}: {data[:300]!r}")
        previous, answer = request_id, json.loads(data)
    finished = time.perf_counter()
    connection.close()
    return finished - started, finished - last_started, answer


class IncrementalPulls(threading.Thread):
    """Pull the feed's newest changes every 0.5 s, as the collect pipe would, and time them."""

    def __init__(self, port: int, since: int):
        super().__init__(daemon=True)
        self.port, self.since, self.seconds = port, since, []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            started = time.perf_counter()
            connection.request("GET", f"/api/orders?since={self.since}&limit=1000")
            response = connection.getresponse()
            response.read()
            self.seconds.append(time.perf_counter() - started)
            connection.close()


def deliver(port: int) -> int:
    """A complete pull, as the collect pipe's: Sesam has now seen every order."""
    result = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-D", "-",
                             f"http://127.0.0.1:{port}/api/orders"],
                            capture_output=True, text=True, timeout=600, check=True)
    header = next(line for line in result.stdout.splitlines()
                  if line.lower().startswith("x-dataset-max-updated:"))
    return int(header.split(":", 1)[1])


def bench_push(count: int, backend: str, folder: Path, seed: int, sesam_limits: bool) -> dict:
    print(f"\n== push: a full sync of {count:,} orders on {backend}"
          + (" at Sesam's limits" if sesam_limits else ""), flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    with bench_database(backend, folder) as url:
        store = open_store(url)
        store.migrate()
        store.bulk_load(orders(count, seed))
        store.close()
        if backend == "postgresql":
            settle_postgres(url)
        batches, changed, left_out = bodies(count, seed)
        limits = cgroup.SesamLimits() if sesam_limits else None
        server = start_gunicorn(url, folder, prefix=limits.enter_command() if limits else None,
                                LOG_LEVEL="WARNING", MALLOC_ARENA_MAX="2")
        try:
            highest = deliver(server.port)
            pids = process_tree(server.process.pid)
            cpu_before = cpu_seconds(pids)
            sampler = MemorySampler(server.process.pid, limits.memory_stat if limits else None)
            pulls = IncrementalPulls(server.port, highest)
            pulls.start()
            seconds, sweep_seconds, answer = send_sequence(server.port, batches)
            pulls.done.set()
            pulls.join(10)
            cpu = cpu_seconds(process_tree(server.process.pid)) - cpu_before
            rss_mb, pss_mb = sampler.stop()
        finally:
            server.stop()
            if limits:
                oom_kills = limits.oom_kills()
                limits.remove()
        verified = None if sesam_limits else bench_verify(url, backend, count)
        settings = durability(url)
    sent = count - left_out
    result = {"backend": backend, "orders": count, "sesam_limits": sesam_limits,
              "entities_per_s": sent / seconds, "seconds": seconds, "requests": len(batches),
              "changed": changed, "swept": answer.get("swept"), "sweep_seconds": sweep_seconds,
              "cpu_per_million": cpu / sent * 1e6, "peak_pss_mb": pss_mb, "peak_rss_mb": rss_mb,
              "incremental_p50_s": statistics.median(pulls.seconds) if pulls.seconds else None,
              "incremental_max_s": max(pulls.seconds) if pulls.seconds else None}
    if limits:
        result.update(cgroup_anonymous_peak_mb=sampler.cgroup_anonymous_mb, oom_kills=oom_kills)
    if settings:
        result["postgresql"] = settings
    if verified:
        result["verify"] = verified  # the same store, after the sync: tests/bench/verify.py
    if answer.get("swept") != left_out:
        result["failed"] = f"the sweep deleted {answer.get('swept')} orders, not {left_out}"
    print(f"   {json.dumps({k: v for k, v in result.items() if k != 'verify'})}", flush=True)
    return result


def table(results: list[dict]) -> str:
    rows = []
    for r in results:
        anonymous = r.get("cgroup_anonymous_peak_mb")
        incremental = "-" if r["incremental_p50_s"] is None else \
            f"{r['incremental_p50_s']:.3f} / {r['incremental_max_s']:.3f}"
        rows.append([r["backend"], f"{r['orders']:,}", "128 MB, 0.25 CPU" if r["sesam_limits"] else "-",
                     f"{r['entities_per_s']:,.0f}", f"{r['seconds']:.1f}", f"{r['sweep_seconds']:.2f}",
                     f"{r['cpu_per_million']:.1f}", f"{r['peak_pss_mb']:.0f}",
                     "-" if anonymous is None else f"{anonymous:.0f}", incremental])
    return markdown_table(["backend", "orders", "limits", "entities/s", "s", "sweep s", "CPU-s per M",
                           "peak PSS MB", "cgroup anon MB", "incremental p50 / max s"], rows)


def verdict(results: list[dict]) -> str:
    """The targets, judged on unrounded figures of this run (a million orders only)."""
    lines = []
    for r in results:
        if r["orders"] < 1_000_000 or "failed" in r:
            continue
        where = f"{r['backend']}{' at 128 MB / 0.25 CPU' if r['sesam_limits'] else ''}"
        if r["sesam_limits"]:
            peak = r.get("cgroup_anonymous_peak_mb") or 0
            met = peak <= LIMIT_PEAK_MB and not r.get("oom_kills") \
                and (r["incremental_max_s"] or 0) < INCREMENTAL_SECONDS
            lines.append(f"- push, {where}: peak {peak:.1f} MB (<= {LIMIT_PEAK_MB}), "
                         f"{r.get('oom_kills', 0)} OOM kills, incremental pulls at most "
                         f"{r['incremental_max_s']:.2f} s (< {INCREMENTAL_SECONDS:g}): "
                         f"{'met' if met else 'NOT met'}")
            continue
        target = TARGETS[r["backend"]]
        lines.append(f"- push, {where}: {r['entities_per_s']:,.0f} entities/s (>= {target:,}): "
                     f"{'met' if r['entities_per_s'] >= target else 'NOT met'}")
        sweep = r["sweep_seconds"] / r["orders"] * 1e6
        lines.append(f"- sweep, {where}: {sweep:.2f} s per million orders (< {SWEEP_SECONDS_PER_MILLION:g}): "
                     f"{'met' if sweep < SWEEP_SECONDS_PER_MILLION else 'NOT met'}")
    return "\n".join(lines)
