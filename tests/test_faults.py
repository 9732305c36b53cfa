"""Faults: the disk holding the SQLite file fills up, and frees again.

Needs root and a tmpfs mount (a small filesystem the test makes itself); elsewhere it
skips with the reason.
"""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from service.app import create_app
from service.config import load_settings

ORDER = {"Username": "ann", "Orders": "Thinkpad", "TotalSum": 10}


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"this machine does not allow a tmpfs mount: {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount) -> None:
    with open(mount / "filler", "wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        except OSError:
            pass


def test_a_full_disk_refuses_writes_clearly_changes_nothing_and_recovers(small_disk):
    app = create_app(load_settings({"DATABASE_URL": f"sqlite:///{small_disk}/orders.sqlite3",
                                    "LOG_LEVEL": "ERROR"}))
    client = app.test_client()
    assert client.put("/api/orders/1", json={**ORDER}).status_code == 201
    before = client.get("/api/orders").get_data()

    fill(small_disk)
    faults, writes = 0, 0
    for order_id in range(2, 40):  # enough writes to need new pages on the full disk
        batch = [{"id": order_id * 100 + i, **ORDER, "Orders": "x" * 900} for i in range(50)]
        response = client.post("/api/orders", json=batch)
        writes += 1
        if response.status_code != 200:
            faults += 1
            assert response.status_code == 503
            assert response.get_json()["message"] == "the disk holding the database is full"
            break
    assert faults == 1, "the disk never filled"
    health = client.get("/health")
    assert health.status_code == 503 and "full" in health.get_json()["message"]
    pulled = client.get("/api/orders")  # reading still works on a full disk
    assert pulled.status_code == 200
    served = json.loads(pulled.get_data())
    assert all(len(entity["_id"]) and entity["_updated"] for entity in served)

    os.remove(small_disk / "filler")  # the fault is gone: no restart needed
    assert client.get("/health").status_code == 200
    assert client.put("/api/orders/2", json={**ORDER}).status_code == 201
    after = json.loads(client.get("/api/orders").get_data())
    # The refused batch left nothing behind; everything written before it is there.
    assert len(after) == len(served) + 1 and after[:len(served)] == served
    assert json.loads(before)[0] in after
    print(f"disk full after {writes} batch writes; 1 fault injected, recovered without restart")
    app.extensions["store"].close()
