"""The benchmark's own arithmetic: the verdict on the targets, the table, and its clients."""
from __future__ import annotations

import os
import shutil
import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from tests.bench.__main__ import table, timed_sync, verdict
from tests.support.memory import cpu_seconds


def figures(pss: float, cpu: float, small: float) -> dict:
    return {"full_sync": {"seconds_median": 0.2, "seconds_min": 0.2, "seconds_max": 0.3,
                          "entities_per_s": 5e6, "mb_per_s": 600, "first_byte_ms_median": 1.5,
                          "cpu_s_per_million": cpu, "peak_pss_mb": pss, "peak_rss_mb": pss + 40,
                          "cgroup_anonymous_mb": None},
            "small_pulls": {"requests_per_s": small, "requests_per_s_min": small,
                            "requests_per_s_max": small, "p50_ms": 1.0, "p99_ms": 2.0}}


def run(backend: str, orders: int, service: dict) -> dict:
    return {"orders": orders, "backend": backend, "sesam_limits": False,
            "targets": {"service": service, "floor": figures(50, 0.05, 1000),
                        "peer": {"failed": "did not start: exited with -9 before it answered",
                                 "oom_kills": 1}}}


def test_the_verdict_judges_each_target_on_the_largest_run_of_each_backend():
    results = [run("sqlite", 10_000, figures(99, 9.0, 100)),
               run("sqlite", 1_000_000, figures(63.9, 0.39, 530)),
               run("postgresql", 1_000_000, figures(81, 0.61, 279))]
    lines = verdict(results).splitlines()
    assert lines[0].startswith("- **sqlite**, 1,000,000 orders: peak PSS during a full sync 64 MB (met")
    assert "0.530x (regression guard, not a target: held, >= 0.53x)" in lines[0]
    assert "0.39 CPU-s per M entities (met" in lines[0]
    assert "81 MB (NOT met: <= 80 MB)" in lines[1]
    assert "0.279x (regression guard, not a target: REGRESSED, >= 0.28x)" in lines[1]
    assert "0.61 CPU-s per M entities (NOT met: <= 0.6)" in lines[1]
    small = verdict([run("sqlite", 10_000, figures(60, 0.3, 950))])
    assert "10,000 orders (the targets are set at 1,000,000)" in small


def test_the_table_shows_a_contender_that_failed_and_ratios_only_for_the_service():
    text = table([run("sqlite", 1_000_000, figures(63, 0.22, 600))])
    service, floor, peer = text.splitlines()[2:]
    assert service.endswith("|  |  | 0.60x |")  # no limit in this run, and the peer failed
    assert floor.endswith("|  |  |  |")
    assert "failed: did not start: exited with -9 before it answered (OOM kills: 1)" in peer


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")
def test_curl_times_a_read_and_reports_its_size_and_a_failure():
    body = b"[" + b"1," * 50_000 + b"1]"

    def app(environ, start_response):
        ok = environ["PATH_INFO"] == "/full"
        start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "application/json")])
        return [body if ok else b"{}"]

    server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        seconds, first_byte, size = timed_sync(server.server_port, "/full")
        assert size == len(body) and 0 < first_byte <= seconds
        with pytest.raises(RuntimeError, match="HTTP 503"):
            timed_sync(server.server_port, "/down")
    finally:
        server.shutdown()
        server.server_close()


def test_cpu_seconds_counts_what_a_process_burns():
    before = cpu_seconds([os.getpid()])
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    assert 0.2 <= cpu_seconds([os.getpid()]) - before <= 1.0


def test_the_push_verdict_judges_the_million_order_runs():
    from tests.bench.push import verdict as push_verdict
    base = {"orders": 1_000_000, "sesam_limits": False, "sweep_seconds": 4.99,
            "incremental_max_s": 0.2}
    lines = push_verdict([{**base, "backend": "sqlite", "entities_per_s": 39_999.9},
                          {**base, "backend": "postgresql", "entities_per_s": 20_000},
                          {**base, "backend": "sqlite", "orders": 10_000, "entities_per_s": 1},
                          {**base, "backend": "sqlite", "sesam_limits": True, "entities_per_s": 1,
                           "cgroup_anonymous_peak_mb": 96.5, "oom_kills": 0}]).splitlines()
    assert lines[0] == "- push, sqlite: 40,000 entities/s (>= 40,000): NOT met"
    assert lines[1] == "- sweep, sqlite: 4.99 s per million orders (< 5): met"
    assert lines[2] == "- push, postgresql: 20,000 entities/s (>= 20,000): met"
    assert lines[4].startswith("- push, sqlite at 128 MB / 0.25 CPU: peak 96.5 MB (<= 96)")
    assert lines[4].endswith("NOT met") and len(lines) == 5
