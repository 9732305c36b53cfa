"""The service as a Sesam node runs it: 128 MB and a quarter of one core, under load.

    python -m tests.bench.sesam_limits --backend sqlite --orders 1000000
    python -m tests.bench.sesam_limits --backend postgresql --workers 1 --threads 8

Needs root and the cgroup v1 controllers (tests/support/cgroup.py). The orders are loaded
before the service starts, outside the limits; then the load of tests/support/sesam_load.py
runs against gunicorn with the image's command inside them. Then the heavy and slow
clients of tests/support/heavy_clients.py: 16 bodies of 1 MiB of the worst shape at once,
the densest the service parses, then 16 of nested lists, which it refuses unparsed (the
peak memory, the answers), and 8 stalled bodies with 8 pulls never read (the slowest
/health or small pull meanwhile). It prints the figures as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from tests.support.seeded_orders import orders
from tests.support import cgroup
from tests.support.databases import fresh_database, load_into, plain_sql
from tests.support.heavy_clients import (PeakSampler, nested_lists_body, post_at_once,
                                        slowest_answer, stalled_body, unread_pull,
                                        worst_shape_body)
from tests.support.servers import basic_auth, start_gunicorn
from tests.support.sesam_load import Client, LoadPlan, run_load

USER, PASSWORD = "sesam", "quota-bench-password"


def incremental_since(database_url: str, count: int, back: int) -> int:
    """The `_updated` from which `back` changes follow (the last `back` of `count`)."""
    with plain_sql(database_url) as connection:
        return connection.execute("SELECT seq FROM changes ORDER BY seq LIMIT 1 OFFSET ?",
                                  (count - back - 1,)).fetchone()[0]


def measure(backend: str, count: int, workers: int, threads: int, plan: LoadPlan,
            folder: Path) -> dict:
    limits = cgroup.SesamLimits()
    try:
        with fresh_database(backend, folder) as url:
            load_into(url, orders(count))
            since = incremental_since(url, count, plan.incremental_limit)
            server = start_gunicorn(url, folder, prefix=limits.enter_command(),
                                    WEB_CONCURRENCY=str(workers), THREADS=str(threads),
                                    AUTH_USERNAME=USER, AUTH_PASSWORD=PASSWORD, LOG_LEVEL="INFO",
                                    MALLOC_ARENA_MAX="2")  # as the image sets it
            try:
                idle_mb = limits.anonymous_mb()
                cpu_before = limits.cpu_seconds()
                client = Client(server.url, basic_auth(USER, PASSWORD))
                report = run_load(client, plan, count, since, limits.anonymous_mb)
                cpu = limits.cpu_seconds() - cpu_before
                hostile = heavy_clients(server, limits)
            finally:
                server.stop()
            log = server.log()
    finally:
        oom_kills = limits.oom_kills()
        limits.remove()
    return {"backend": backend, "orders": count, "workers": workers, "threads": threads,
            "plan": plan.__dict__, "idle_anonymous_mb": round(idle_mb, 1),
            **report.summary(count), "server_cpu_s": round(cpu, 1), "oom_kills": oom_kills,
            "worker_timeouts": log.count("WORKER TIMEOUT"),
            "full_syncs": report.full_syncs, "batches": report.batches,
            "refusals": report.refused[:20], **hostile}


def heavy_clients(server, limits: cgroup.SesamLimits) -> dict:
    """What heavy and slow clients with credentials do to the service at the limits."""
    auth = basic_auth(USER, PASSWORD)
    with PeakSampler(limits.anonymous_mb) as memory:
        answers = post_at_once(f"{server.url}/api/orders", worst_shape_body(), auth, 16)
        answers += post_at_once(f"{server.url}/api/orders", nested_lists_body(), auth, 16)
        time.sleep(1)
    slow = [stalled_body(server.port, auth) for _ in range(8)] + \
           [unread_pull(server.port, auth) for _ in range(8)]
    try:
        time.sleep(0.5)
        slowest = slowest_answer(server.port, auth, 5.0)
    finally:
        for sock in slow:
            sock.close()
    return {"worst_bodies_peak_anonymous_mb": round(memory.peak, 1),  # 16 decimals, 16 nested
            "worst_bodies_answers": dict(Counter(status for status, _ in answers)),
            "slow_clients_slowest_health_or_small_pull_s": round(slowest, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.sesam_limits", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="sqlite", choices=("sqlite", "postgresql"))
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--syncs", type=int, default=LoadPlan.syncs)
    parser.add_argument("--writers", type=int, default=LoadPlan.writers)
    parser.add_argument("--batches", type=int, default=LoadPlan.batches)
    parser.add_argument("--batch-orders", type=int, default=LoadPlan.batch_orders)
    args = parser.parse_args(argv)
    reason = cgroup.available()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 1
    plan = LoadPlan(syncs=args.syncs, writers=args.writers, batches=args.batches,
                    batch_orders=args.batch_orders)
    with tempfile.TemporaryDirectory() as folder:
        result = measure(args.backend, args.orders, args.workers, args.threads, plan, Path(folder))
    print(json.dumps(result, indent=2))
    return 0 if result["refused"] == 0 and result["oom_kills"] == 0 else 2


if __name__ == "__main__":
    sys.exit(main())
