"""`make run` on a fresh clone: only the service's own dependencies, an answer within
seconds, and the port it chose remembered by the tools that talk to it (issue 26)."""
from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request

from tests.support.servers import ROOT, free_port
from tests.support.credentials import tool_environment


def fresh_copy(folder):
    """The project's files as a clone has them: no .venv, no data, no remembered port."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, files):
        source, target = ROOT / name.decode(), folder / name.decode()
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    return folder


def test_the_first_make_run_installs_only_the_service_and_the_tools_find_its_port(tmp_path):
    clone = fresh_copy(tmp_path / "clone")
    port = free_port()
    environment = tool_environment("PORT", "VIRTUAL_ENV")
    started = time.monotonic()
    run = subprocess.Popen(["make", "run", f"PORT={port}"], cwd=clone, env=environment,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while time.monotonic() - started < 240:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                assert run.poll() is None, run.stdout.read().decode()[-3000:]
                time.sleep(0.2)
        print(f"make run answered after {time.monotonic() - started:.1f} s")
        installed = os.listdir(clone / ".venv" / "bin")
        assert "gunicorn" in installed and "flask" in installed
        assert not {"pytest", "ruff", "mypy"} & set(installed), installed
        # No PORT now: the tools find the one `make run` chose.
        pull = subprocess.run(["make", "-s", "pull"], cwd=clone, env=environment,
                              capture_output=True, text=True, timeout=120, check=False)
        assert pull.returncode == 0 and "full run: 3 entities" in pull.stdout, pull.stderr
        assert not (clone / ".venv" / "bin" / "pytest").exists()
    finally:
        os.killpg(run.pid, signal.SIGTERM)
        run.wait(60)
