"""The image under the load a Sesam node brings, at Sesam's default limits.

The container runs as Sesam runs it (128 MB, a quarter of one core, the image's own
command and defaults), on SQLite in its data folder and on PostgreSQL, while full syncs
run at once, clients post batches of orders and an incremental pull runs every second.
No request may be refused, and the memory charged must leave a quarter of the limit free
at the peak and after the burst, so a second burst cannot be an OOM kill.
Sizes: IMAGE_LOAD_ORDERS (default 200,000; the bench runs 1,000,000).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tests.image.containers import HOST_NETWORK, PASSWORD, USER, anonymous_memory_mb, docker, run_container
from tests.support.databases import fresh_database, load_into, plain_sql
from tests.support.heavy_clients import PeakSampler, nested_lists_body, post_at_once, worst_shape_body
from tests.support.seeded_orders import orders
from tests.support.servers import basic_auth
from tests.support.sesam_load import Client, LoadPlan, run_load

ORDERS = int(os.environ.get("IMAGE_LOAD_ORDERS", "200000"))
PLAN = LoadPlan(syncs=4, writers=2, batches=3, batch_orders=9_000)
CHARGED_AT_MOST_MB = 96  # 75% of Sesam's 128 MB
APP_UID = 10001


@pytest.fixture(params=["sqlite", "postgresql"])
def loaded(request, engine, tmp_path_factory):
    """A database holding ORDERS orders, loaded from the host, and the URL the container uses."""
    backend = request.param
    if backend == "postgresql" and not HOST_NETWORK:
        pytest.skip("the container reaches a PostgreSQL on 127.0.0.1 only on the host network "
                    "(IMAGE_TEST_NETWORK=host)")
    folder = Path(tempfile.mkdtemp(prefix="orders-image-load-"))
    try:
        with fresh_database(backend, folder) as url:
            load_into(url, orders(ORDERS))
            with plain_sql(url) as connection:
                since = connection.execute("SELECT seq FROM changes ORDER BY seq LIMIT 1 OFFSET ?",
                                           (ORDERS - PLAN.incremental_limit - 1,)).fetchone()[0]
            if backend == "sqlite":
                for path in [folder, *folder.iterdir()]:
                    os.chown(path, APP_UID, APP_UID)
                url = "sqlite:////data/orders.sqlite3"
            yield backend, url, folder, since
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_sesams_limits_hold_under_concurrent_syncs_and_writes(image, loaded):
    backend, url, folder, since = loaded
    container = run_container(image, str(folder), DATABASE_URL=url)
    try:
        container.wait_healthy(timeout=120)
        idle = anonymous_memory_mb(container)
        report = run_load(Client(container.url, basic_auth(USER, PASSWORD)), PLAN, ORDERS, since,
                          lambda: anonymous_memory_mb(container))
        state = container.inspect()["State"]
        log = docker("logs", container.id, check=False).stdout
    finally:
        docker("rm", "-f", container.id, check=False)
    summary = report.summary(ORDERS)
    print(f"\n{backend} at 128 MB and 0.25 CPU, {ORDERS:,} orders, idle {idle:.1f} MB: "
          + json.dumps(summary))
    assert report.refused == []
    assert not state["OOMKilled"] and state["Running"], state
    assert "WORKER TIMEOUT" not in log
    assert summary["peak_anonymous_mb"] <= CHARGED_AT_MOST_MB
    assert summary["after_burst_anonymous_mb"] <= CHARGED_AT_MOST_MB


def test_sixteen_worst_shape_bodies_at_once_stay_inside_the_limit(image, tmp_path):
    """Issue 24, point 2: 16 concurrent 1 MiB bodies of the worst shape the service parses
    (decimals), then 16 of nested lists (refused unparsed), at 128 MB; each answered (4xx,
    or 503 with Retry-After for one that would wait too long), the charged memory at most
    96 MB, no OOM kill."""
    os.chown(tmp_path, APP_UID, APP_UID)
    container = run_container(image, str(tmp_path))
    body = worst_shape_body()
    try:
        container.wait_healthy(timeout=120)
        idle = anonymous_memory_mb(container)
        with PeakSampler(lambda: anonymous_memory_mb(container)) as memory:
            answers = post_at_once(f"{container.url}/api/orders", body, basic_auth(USER, PASSWORD), 16)
            answers += post_at_once(f"{container.url}/api/orders", nested_lists_body(),
                                    basic_auth(USER, PASSWORD), 16)
            time.sleep(1)
        state = container.inspect()["State"]
    finally:
        docker("rm", "-f", container.id, check=False)
    statuses = sorted(status for status, _ in answers)
    print(f"\n16 bodies of decimals and 16 of nested lists, {len(body):,} bytes each: idle {idle:.1f} MB, peak anonymous "
          f"{memory.peak:.1f} MB; answers {statuses}")
    assert len(answers) == 32 and all(status in (400, 503) for status in statuses), answers
    assert all(retry for status, retry in answers if status == 503)
    assert not state["OOMKilled"] and state["Running"], state
    assert memory.peak <= CHARGED_AT_MOST_MB
