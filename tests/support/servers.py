"""Start the real service under gunicorn on a free loopback port, for tests over HTTP."""
from __future__ import annotations

import base64
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from service.config import DEFAULTS

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


def start_gunicorn(database_url: str, log_dir: Path, app: str | None = None,
                   prefix: list[str] | None = None, new_session: bool = False, **env: str) -> Server:
    """Run gunicorn with the project's config; return once /health answers 200. `prefix`
    goes before the command (e.g. one that enters a cgroup and execs the rest);
    `new_session` gives it a process group of its own, for signals sent to the group."""
    port = free_port()
    # The service's own settings come from the test, never from the shell that runs it
    # (a developer's AUTH_USERNAME, say, would turn every open test server into a locked one).
    inherited = {key: value for key, value in os.environ.items() if key not in DEFAULTS}
    environment = {**inherited, "HOST": "127.0.0.1", "PORT": str(port),
                   "DATABASE_URL": database_url, "WEB_CONCURRENCY": "2", "THREADS": "4",
                   "LOG_LEVEL": "INFO", "GRACEFUL_TIMEOUT": "20",
                   # The feed's periodic verification only where a test asks for it.
                   "VERIFY_INTERVAL_S": "0",
                   # Open, unless a test gives credentials: it listens on 127.0.0.1 only.
                   "ALLOW_UNAUTHENTICATED": "true", **env}
    log_path = log_dir / f"gunicorn-{port}.log"
    command = [*(prefix or []), sys.executable, "-m", "gunicorn", "-c", "service/gunicorn.conf.py"]
    if app:
        command.append(app)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=new_session)
    server = Server(process, port, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{server.log()}")
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.1)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"gunicorn did not become healthy:\n{server.log()}")


def kill_tree(root: int) -> None:
    """SIGKILL a process and all its descendants at once, as a crash or the OOM killer would."""
    from tests.support.memory import process_tree
    for pid in process_tree(root):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def basic_auth(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def raw_get(port: int, path: str, headers: dict | None = None,
            timeout: float = 60) -> tuple[http.client.HTTPResponse, bytes]:
    """GET and read the whole body; a broken body raises (IncompleteRead etc.)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    connection.request("GET", path, headers=headers or {})
    response = connection.getresponse()
    try:
        return response, response.read()
    finally:
        connection.close()
