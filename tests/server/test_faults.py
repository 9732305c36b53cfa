"""Faults: the disk holding the SQLite file fills up, and frees again.

Needs root and a tmpfs mount (a small filesystem the test makes itself); elsewhere it
skips with the reason.
"""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.support.apps import prepared_app
from tests.support.servers import kill_tree

ORDER = {"Username": "ann", "Orders": "Thinkpad", "TotalSum": 10}


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                            capture_output=True, text=True, check=False)
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
    app = prepared_app({"DATABASE_URL": f"sqlite:///{small_disk}/orders.sqlite3",
                                    "LOG_LEVEL": "ERROR"})
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


def test_kill_9_in_the_middle_of_bulk_writes_leaves_whole_batches_and_a_consistent_log(database_url, tmp_path):
    import random
    import threading
    import time
    import urllib.request

    from tests.support.databases import live_orders, plain_sql
    from tests.support.servers import start_gunicorn
    from tests.sesam_emulator import Pipe, PipeConfig, http_transport

    rng = random.Random(20261128)
    rounds, size, pipe = 6, 4000, None
    outcomes = []
    for round_number in range(rounds):
        server = start_gunicorn(database_url, tmp_path)
        if pipe is None:  # a Sesam pipe that saw the state before any crash
            pipe = Pipe(http_transport(f"{server.url}/"), PipeConfig(page_size=500))
            pipe.run()
        batch = [{"id": round_number * size + i + 1, "Username": f"round{round_number}", "Orders": "x",
                  "TotalSum": i} for i in range(size)]
        body = json.dumps(batch).encode()

        def post(server=server, body=body):
            request = urllib.request.Request(f"{server.url}/api/orders", data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            try:
                urllib.request.urlopen(request, timeout=30).read()
            except OSError:
                pass

        writer = threading.Thread(target=post)
        writer.start()
        time.sleep(rng.uniform(0.0, 0.25))
        kill_tree(server.process.pid)
        writer.join(30)
        server.process.wait(10)
        with plain_sql(database_url) as connection:
            written = connection.execute("SELECT count(*) FROM orders WHERE username = ?",
                                         (f"round{round_number}",)).fetchone()[0]
        assert written in (0, size), f"round {round_number}: {written} of {size} orders: half a batch"
        outcomes.append(written == size)
    server = start_gunicorn(database_url, tmp_path)
    try:
        with plain_sql(database_url) as connection:
            rows = connection.execute("SELECT seq, entity FROM changes ORDER BY seq").fetchall()
        assert all(json.loads(entity)["_updated"] == seq for seq, entity in rows)
        assert len({seq for seq, _ in rows}) == len(rows)
        pipe = Pipe(http_transport(f"{server.url}/"), pipe.config, pipe.state)
        pipe.run()  # continues from its offset taken before the crashes
    finally:
        server.stop()
    assert {key: (e["Username"], e["Orders"], float(e["TotalSum"])) for key, e in pipe.state.live().items()} \
        == live_orders(database_url)
    print(f"kill -9 during bulk writes: {rounds} crashes, {sum(outcomes)} batches committed whole, "
          f"{rounds - sum(outcomes)} rolled back whole; the pipe caught up exactly")


def open_files_and_threads(root: int) -> tuple[int, int]:
    from tests.support.memory import process_tree
    files = threads = 0
    for pid in process_tree(root):
        try:
            files += len(os.listdir(f"/proc/{pid}/fd"))
            threads += len(os.listdir(f"/proc/{pid}/task"))
        except FileNotFoundError:
            pass
    return files, threads


def test_slow_and_vanishing_clients_neither_stall_others_nor_leak(database_url, tmp_path):
    import socket
    import threading
    import time

    from tests.support.databases import load_orders
    from tests.support.servers import raw_get, start_gunicorn

    load_orders(database_url, 30_000)
    server = start_gunicorn(database_url, tmp_path, WEB_CONCURRENCY="2", THREADS="4")
    try:
        for _ in range(4):  # warm every thread's connections up
            raw_get(server.port, "/api/orders")
        baseline = open_files_and_threads(server.process.pid)
        request = b"GET /api/orders HTTP/1.1\r\nHost: x\r\n\r\n"

        stop_slow = threading.Event()

        def slow_reader():
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.sendall(request)
                while not stop_slow.is_set() and sock.recv(512):
                    time.sleep(0.05)

        slow = [threading.Thread(target=slow_reader) for _ in range(3)]
        for thread in slow:
            thread.start()
        vanished, latencies, counts = 0, [], []
        for _ in range(2):  # two rounds: a leak grows with the clients, a pool does not
            for _ in range(40):  # clients that start a full sync and drop the connection
                with socket.create_connection(("127.0.0.1", server.port)) as sock:
                    sock.sendall(request)
                    sock.recv(1024)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                vanished += 1
                started = time.perf_counter()
                response, body = raw_get(server.port, "/api/orders?since=100&limit=10", timeout=10)
                latencies.append(time.perf_counter() - started)
                assert response.status == 200 and len(json.loads(body)) == 10
            time.sleep(1.0)  # let the workers notice the dropped sockets
            counts.append(open_files_and_threads(server.process.pid))
        stop_slow.set()
        for thread in slow:
            thread.join(30)
    finally:
        server.stop()
    worst = max(latencies)
    (files_1, threads_1), (files_2, threads_2) = counts
    print(f"slow/vanishing clients: 3 slow readers, {vanished} dropped mid-stream; other clients' "
          f"worst latency {worst * 1000:.0f} ms; open files {baseline[0]} -> {files_1} -> {files_2}, "
          f"threads {baseline[1]} -> {threads_1} -> {threads_2}")
    assert worst < 2.0
    # No thread leaked: at most the master, and per worker its main thread, its 4 request
    # threads and (PostgreSQL) the connection pool's 3 workers and scheduler.
    assert threads_2 <= 1 + 2 * (1 + 4 + (4 if database_url.startswith("postgresql") else 0))
    assert files_2 <= files_1 + 4  # no connection or file handle leaked (a socket may linger)


def test_a_read_only_database_refuses_writes_clearly_changes_nothing_and_recovers(tmp_path):
    """The database file and its write-ahead log made immutable (chattr +i: read-only even
    for root) while the service runs, then writable again."""
    import shutil as shell_tools
    if os.geteuid() != 0 or not shell_tools.which("chattr"):
        pytest.skip("making a file read-only for root needs root and chattr")
    app = prepared_app({"DATABASE_URL": f"sqlite:///{tmp_path}/orders.sqlite3",
                                    "LOG_LEVEL": "ERROR"})
    client = app.test_client()
    assert client.put("/api/orders/1", json={**ORDER}).status_code == 201
    before = client.get("/api/orders").get_data()
    files = [str(tmp_path / "orders.sqlite3"), str(tmp_path / "orders.sqlite3-wal")]
    # (never the -shm file: it is memory-mapped, and an immutable mapping crashes the reader)
    locked = subprocess.run(["chattr", "+i", *files], capture_output=True, text=True, check=False)
    if locked.returncode != 0:
        pytest.skip(f"this filesystem has no immutable flag: {locked.stderr.strip()}")
    try:
        for attempt in (lambda: client.put("/api/orders/2", json={**ORDER}),
                        lambda: client.post("/api/orders", json=[{"id": 3, **ORDER}]),
                        lambda: client.delete("/api/orders/1")):
            response = attempt()
            assert response.status_code == 503
            assert response.get_json()["message"] == "the database is read-only"
        health = client.get("/health")
        assert health.status_code == 503 and health.get_json()["message"] == "the database is read-only"
        assert client.get("/api/orders").get_data() == before  # reads still work, nothing changed
    finally:
        subprocess.run(["chattr", "-i", *files], check=True)
    assert client.get("/health").status_code == 200  # recovered, no restart
    assert client.put("/api/orders/2", json={**ORDER}).status_code == 201
    after = json.loads(client.get("/api/orders").get_data())
    assert [entity["_id"] for entity in after] == ["1", "2"]
    print("read-only database: 3 writes refused with 503, health 503, recovered without restart")
    app.extensions["store"].close()
