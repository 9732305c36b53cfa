"""End to end: the Sesam pipe emulator keeps a dataset equal to the store, whatever happens."""
from __future__ import annotations

import json
import random
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.apps import prepared_app
from tests.support.databases import BACKENDS, fresh_database, live_orders, load_orders, plain_sql
from tests.support.servers import start_gunicorn
from tests.sesam_emulator import Pipe, PipeConfig, PipeState, RunFailed, http_transport, main
from tests.support.targets import flask_target, http_target, pipe_orders

IDS = st.integers(min_value=1, max_value=8)
NAMES = st.sampled_from(["ann", "bob", "cy"])
SUMS = st.sampled_from(["0", "12.10", "8000", "0.30"])
OPERATIONS = st.one_of(
    st.tuples(st.just("api_put"), IDS, NAMES, SUMS),
    st.tuples(st.just("api_delete"), IDS),
    st.tuples(st.just("sql_put"), IDS, NAMES, SUMS),
    st.tuples(st.just("sql_delete"), IDS),
    st.tuples(st.just("run"), st.sampled_from(["full", "incremental"]),
              st.one_of(st.none(), st.integers(min_value=1, max_value=5))),
)


@pytest.mark.parametrize("backend_name", BACKENDS)
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=st.lists(OPERATIONS, max_size=40))
def test_the_dataset_follows_every_write_and_incremental_runs_get_only_changes(backend_name, operations):
    with tempfile.TemporaryDirectory() as folder, fresh_database(backend_name, Path(folder)) as url, \
            plain_sql(url) as sql:
        app = prepared_app({"DATABASE_URL": url, "LOG_LEVEL": "ERROR"})
        target = flask_target(app.test_client(), None, None)
        pipe = Pipe(target.transport)
        live: dict[int, tuple] = {}
        changed: set[str] = set()
        for operation in operations:
            kind, args = operation[0], operation[1:]
            if kind in ("api_put", "sql_put"):
                order_id, name, total = args
                # The API gets a JSON float (12.1 for "12.10"); the store keeps its text.
                stored = format(Decimal(json.dumps(float(total))), "f") if kind == "api_put" else total
                if live.get(order_id) != (name, stored):
                    changed.add(str(order_id))
                live[order_id] = (name, stored)
                if kind == "api_put":
                    body = {"id": order_id, "Username": name, "Orders": "Thinkpad",
                            "TotalSum": float(total)}
                    assert target.write("PUT", f"/api/orders/{order_id}", body) in (200, 201)
                else:
                    sql.execute("INSERT INTO orders VALUES (?, ?, 'Thinkpad', ?) ON CONFLICT (id) "
                                "DO UPDATE SET username = excluded.username, total_sum = "
                                "excluded.total_sum", (order_id, name, total))
            elif kind in ("api_delete", "sql_delete"):
                (order_id,) = args
                if live.pop(order_id, None) is not None:
                    changed.add(str(order_id))
                if kind == "api_delete":
                    assert target.write("DELETE", f"/api/orders/{order_id}", None) in (204, 404)
                else:
                    sql.execute("DELETE FROM orders WHERE id = ?", (order_id,))
            else:
                mode, page_size = args
                incremental = mode == "incremental" and pipe.state.offset is not None
                pipe.config.page_size = page_size
                result = pipe.run(full=not incremental)
                if incremental:
                    assert {e["_id"] for e in result.entities} == changed
                changed = set()
        pipe.config.page_size = 3
        pipe.run()
        app.extensions["store"].close()
        assert pipe_orders(pipe) == live_orders(url)
        assert set(pipe.state.live()) == {str(i) for i in live}


def test_concurrent_writers_and_a_paging_pipe_lose_nothing(database_url, tmp_path):
    """Writers change orders through a 3-worker gunicorn while the pipe pulls with paging."""
    server = start_gunicorn(database_url, tmp_path, WEB_CONCURRENCY="3", THREADS="4")
    target = http_target("gunicorn", f"{server.url}/api/orders", None, None, writable=True)
    pipe = Pipe(http_transport(f"{server.url}/"), PipeConfig(page_size=7))
    stop, errors, writes = threading.Event(), [], [0]

    def writer(seed: int):
        rng = random.Random(seed)
        while not stop.is_set():
            order_id = rng.randint(1, 60)
            if rng.random() < 0.25:
                status = target.write("DELETE", f"/api/orders/{order_id}", None)
                ok = status in (204, 404)
            else:
                body = {"id": order_id, "Username": f"w{seed}", "Orders": "x",
                        "TotalSum": rng.randint(0, 10_000)}
                status = target.write("PUT", f"/api/orders/{order_id}", body)
                ok = status in (200, 201)
            if not ok:
                errors.append(status)
            writes[0] += 1

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(4)]
    try:
        for thread in threads:
            thread.start()
        runs, deadline = 0, time.monotonic() + 4
        while time.monotonic() < deadline:
            pipe.run()
            runs += 1
        stop.set()
        for thread in threads:
            thread.join(30)
        pipe.run()
    finally:
        stop.set()
        server.stop()
    print(f"concurrency: {writes[0]} writes by 4 threads, {runs} paging runs during them")
    assert not errors and writes[0] > 50 and runs > 3
    assert pipe_orders(pipe) == live_orders(database_url)


def test_a_fault_mid_stream_fails_the_run_and_keeps_the_state(database_url, tmp_path):
    load_orders(database_url, 2500)
    server = start_gunicorn(database_url, tmp_path, app="tests.support.faulty_wsgi:app", FAIL_AFTER_CHUNKS="1")
    try:
        pipe = Pipe(http_transport(f"{server.url}/"),
                    state=PipeState(offset=5, dataset={"1": {"_id": "1", "_updated": 1}}))
        with pytest.raises(RunFailed, match="broke off|JSON"):
            pipe.run()
        assert pipe.state.offset == 5 and list(pipe.state.dataset) == ["1"]
        with pytest.raises(RunFailed):
            pipe.run(full=True)
        assert pipe.state.offset == 5 and list(pipe.state.dataset) == ["1"]
        # A chronological pipe keeps what arrived whole, as Sesam checkpoints during the run,
        # and tracks no deletions: an entity the source does not have stays live.
        pipe.config.is_chronological = True
        pipe.state.dataset["gone"] = {"_id": "gone", "_updated": 2}
        with pytest.raises(RunFailed) as failed:
            pipe.run(full=True)
        kept = [e for key, e in pipe.state.dataset.items() if key != "gone"]
        assert len(kept) > 1 and failed.value.kept.startswith(f"kept {len(kept)} entities")
        assert pipe.state.offset == max(e["_updated"] for e in kept) and "gone" in pipe.state.live()
    finally:
        server.stop()


def test_the_command_line_pulls_only_what_changed(tmp_path, capsys):
    server = start_gunicorn(f"sqlite:///{tmp_path}/orders.sqlite3", tmp_path,
                            LOAD_SAMPLE_ORDERS="true")
    state = tmp_path / "state.json"
    url = f"{server.url}/api/orders"
    try:
        assert main(["--url", url, "--state", str(state)]) == 0
        assert "full run: 3 entities" in capsys.readouterr().out
        target = http_target("gunicorn", url, None, None, writable=True)
        target.write("PUT", "/api/orders/2", {"Username": "Wimen1979", "Orders": "Pixel", "TotalSum": 999})
        assert main(["--url", url, "--state", str(state), "--show"]) == 0
        out = capsys.readouterr().out
        assert "incremental run: 1 entities" in out and '"Orders": "Pixel"' in out
        assert main(["--url", url, "--state", str(state), "--page-size", "2"]) == 0
        assert "incremental run: 0 entities" in capsys.readouterr().out
    finally:
        server.stop()
    assert main(["--url", url, "--state", str(state)]) == 1  # the service is gone
    assert "run FAILED" in capsys.readouterr().err
