"""Every way the service is stopped leaves no traceback in its log: SIGTERM, SIGINT and
SIGQUIT to the master or to the whole process group (as `kill -- -PGID`, systemd or a
container runtime may send them), repeated signals, and a stop during a stream."""
from __future__ import annotations

import http.client
import os
import signal
import time

import pytest

from tests.support.databases import load_orders
from tests.support.servers import start_gunicorn

pytestmark = pytest.mark.slow
ROUNDS = 6


def stop(server, sig: int, to_group: bool, repeat: int) -> None:
    for _ in range(repeat):
        if server.process.poll() is None:
            if to_group:
                os.killpg(server.process.pid, sig)
            else:
                server.process.send_signal(sig)
        time.sleep(0.05)
    server.process.wait(30)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGQUIT], ids=lambda s: s.name)
@pytest.mark.parametrize("to_group", [False, True], ids=["master", "group"])
def test_a_stop_logs_no_traceback(tmp_path, sig, to_group):
    url = f"sqlite:///{tmp_path}/orders.sqlite3"
    for _ in range(ROUNDS):
        server = start_gunicorn(url, tmp_path, new_session=True)
        stop(server, sig, to_group, repeat=1)
        assert_clean(server.log())


def test_repeated_signals_and_a_stop_during_a_stream_log_no_traceback(tmp_path):
    url = load_orders(f"sqlite:///{tmp_path}/orders.sqlite3", 60_000)
    for round_number in range(ROUNDS):
        server = start_gunicorn(url, tmp_path, new_session=True)
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        connection.request("GET", "/api/orders")
        response = connection.getresponse()
        response.read(4096)  # a stream under way, its client slow
        stop(server, signal.SIGTERM, to_group=round_number % 2 == 1, repeat=3)
        connection.close()
        assert_clean(server.log())


def assert_clean(log: str) -> None:
    assert "Traceback" not in log and "Error" not in log.replace('"level":"ERROR"', ""), log[-3000:]
