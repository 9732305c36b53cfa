"""The load a Sesam node puts on the service, for the quota bench and the image tests.

Full syncs at once (as several pipes reading the source), clients posting batches of
orders, and an incremental pull every second while they run. Every request is counted:
the service must refuse none, and every full sync must be a complete, valid array.
"""
from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

ENTITY_START = b'{"_id":'


@dataclass(frozen=True)
class LoadPlan:
    syncs: int = 4                 # full syncs at once
    writers: int = 2               # clients posting batches
    batches: int = 5               # batches each writer posts
    batch_orders: int = 9_000      # orders per batch (~930 KB, under MAX_BODY_BYTES)
    incremental_limit: int = 1_000
    incremental_every_s: float = 1.0
    settle_s: float = 5.0          # idle time before the after-burst memory figure


@dataclass
class LoadReport:
    full_syncs: list[dict] = field(default_factory=list)     # seconds, entities, status
    batches: list[dict] = field(default_factory=list)        # seconds, status
    incremental_ms: list[float] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)         # what failed, one line each
    peak_mb: float = 0.0
    after_mb: float = 0.0

    def summary(self, expected_entities: int) -> dict:
        syncs = [sync["seconds"] for sync in self.full_syncs]
        ordered = sorted(self.incremental_ms)
        return {
            "full_sync_s": {"min": min(syncs, default=0), "max": max(syncs, default=0)},
            "full_sync_entities_per_s": round(expected_entities / max(syncs)) if syncs else 0,
            "batch_s": {"min": min((b["seconds"] for b in self.batches), default=0),
                        "max": max((b["seconds"] for b in self.batches), default=0)},
            "incremental_pulls": len(ordered),
            "incremental_ms": {"p50": _percentile(ordered, 0.5), "p99": _percentile(ordered, 0.99)},
            "peak_anonymous_mb": round(self.peak_mb, 1),
            "after_burst_anonymous_mb": round(self.after_mb, 1),
            "refused": len(self.refused),
        }


def _percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return 0.0
    return round(ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))], 1)


class Client:
    """HTTP/1.1 to the service, with the Basic auth header when given."""

    def __init__(self, base_url: str, headers: dict[str, str], timeout: float = 600):
        parts = urllib.parse.urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.headers, self.timeout = headers, timeout

    def request(self, method: str, path: str, body: bytes | None = None,
                read: Callable[[http.client.HTTPResponse], object] | None = None):
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            headers = dict(self.headers)
            if body is not None:
                headers["Content-Type"] = "application/json"
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            result = read(response) if read else response.read()
            return response.status, result
        finally:
            connection.close()


def count_entities(response: http.client.HTTPResponse) -> tuple[int, bool]:
    """Read a pull's body in pieces, discarding it: how many entities, and whether it is
    a whole array (starts with `[`, ends with `]`). Memory stays flat on the client."""
    count, tail, first, last = 0, b"", b"", b""
    while piece := response.read(1 << 20):
        first = first or piece[:1]
        window = tail + piece  # a match across two pieces is counted once, here
        count += window.count(ENTITY_START)
        tail = window[-(len(ENTITY_START) - 1):]  # too short to hold a whole match
        last = piece[-1:]
    return count, first == b"[" and last == b"]"


def batch_body(writer: int, batch: int, plan: LoadPlan, first_id: int) -> bytes:
    start = first_id + (writer * plan.batches + batch) * plan.batch_orders
    return json.dumps([{"id": order_id, "Username": f"writer{writer}-batch{batch}",
                        "Orders": "Thinkpad X1 Carbon Gen 12", "TotalSum": order_id % 100000 + 0.5}
                       for order_id in range(start, start + plan.batch_orders)]).encode()


def run_load(client: Client, plan: LoadPlan, expected_entities: int, incremental_since: int,
             memory_mb: Callable[[], float]) -> LoadReport:
    """Run the plan against a service holding `expected_entities`; `memory_mb` reads what
    the service's container (or cgroup) is charged."""
    report = LoadReport()
    done = threading.Event()
    lock = threading.Lock()

    def sample_memory():
        while not done.is_set():
            report.peak_mb = max(report.peak_mb, memory_mb())
            time.sleep(0.05)

    def full_sync(number: int):
        started = time.monotonic()
        try:
            status, (count, whole) = client.request("GET", "/api/orders", read=count_entities)
        except OSError as error:
            status, count, whole = 0, 0, False
            with lock:
                report.refused.append(f"full sync {number}: {error!r}")
        seconds = time.monotonic() - started
        with lock:
            report.full_syncs.append({"seconds": round(seconds, 2), "entities": count, "status": status})
            # Writers add orders while it runs: a sync sees at least what was there.
            if status != 200 or not whole or count < expected_entities:
                report.refused.append(f"full sync {number}: {status}, {count} entities, whole={whole}")

    def writer(number: int):
        for batch in range(plan.batches):
            body = batch_body(number, batch, plan, first_id=1)
            started = time.monotonic()
            try:
                status, answer = client.request("POST", "/api/orders", body=body)
            except OSError as error:
                status, answer = 0, repr(error).encode()
            with lock:
                report.batches.append({"seconds": round(time.monotonic() - started, 2), "status": status})
                if status != 200:
                    report.refused.append(f"writer {number} batch {batch}: {status} {answer[:200]!r}")

    def incremental(stop: threading.Event):
        path = f"/api/orders?since={incremental_since}&limit={plan.incremental_limit}"
        while not stop.wait(plan.incremental_every_s):
            started = time.monotonic()
            try:
                status, _body = client.request("GET", path)
            except OSError as error:
                status = 0
                with lock:
                    report.refused.append(f"incremental pull: {error!r}")
            with lock:
                report.incremental_ms.append((time.monotonic() - started) * 1000)
                if status != 200:
                    report.refused.append(f"incremental pull: {status}")

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    stop_incremental = threading.Event()
    puller = threading.Thread(target=incremental, args=(stop_incremental,), daemon=True)
    puller.start()
    workers = [threading.Thread(target=full_sync, args=(n,)) for n in range(plan.syncs)]
    workers += [threading.Thread(target=writer, args=(n,)) for n in range(plan.writers)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    stop_incremental.set()
    puller.join()
    time.sleep(plan.settle_s)
    done.set()
    sampler.join()
    report.after_mb = memory_mb()
    return report

