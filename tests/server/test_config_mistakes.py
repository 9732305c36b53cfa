"""Configuration mistakes are one clear line each, before anything starts, and secrets are
printed nowhere; a store unreachable at start is logged once, then rarely."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.support.servers import ROOT, free_port

SECRET = "s3cret-Pa55"


SERVE = [sys.executable, "-m", "service", "serve"]


def serve(env: dict, seconds: float = 20, command: list[str] = SERVE) -> subprocess.CompletedProcess:
    environment = {"PATH": os.environ["PATH"], "HOST": "127.0.0.1", "PORT": str(free_port()),
                   "AUTH_USERNAME": "sesam", "AUTH_PASSWORD": SECRET, **env}
    return subprocess.run(command, cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=seconds, check=False)


@pytest.mark.parametrize("env, says", [
    ({"WEB_CONCURRENCY": "lots"}, "WEB_CONCURRENCY must be a whole number from 1 to 64, got 'lots'"),
    ({"THREADS": "0"}, "THREADS must be a whole number from 1 to 256"),
    ({"DATABASE_URL": f"postgresql://orders:{SECRET}%zz@db/orders"}, "a '%' that is not an escape"),
    ({"DATABASE_URL": f"postgresql://orders:{SECRET}@db/orders?sslmod=require"},
     "unknown connection parameter 'sslmod'"),
    ({"DATABASE_URL": f"postgresql://orders:{SECRET}@db:port/orders"}, "is not a valid URL"),
    ({"DATABASE_URL": "mysql://db/orders"}, "must start with sqlite:/// or postgresql://"),
    ({"RECEIVER_MAX_DELETE_SHARE": "lots"}, "RECEIVER_MAX_DELETE_SHARE must be a number from 0 to 1"),
    ({"VERIFY_INTERVAL_S": "-1"}, "VERIFY_INTERVAL_S must be a whole number"),
], ids=lambda value: str(value)[:40])
def test_a_mistake_is_one_line_naming_the_variable_and_no_secret(tmp_path, env, says):
    result = serve({"DATABASE_URL": f"sqlite:///{tmp_path}/o.sqlite3", **env})
    assert result.returncode == os.EX_CONFIG
    assert result.stderr.strip() == f"configuration error: {result.stderr.strip().split(': ', 1)[1]}"
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert SECRET not in result.stderr + result.stdout and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [
    SERVE, [sys.executable, "-m", "gunicorn", "-c", "service/gunicorn.conf.py"],
    [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", "service.wsgi:app"],
], ids=["serve", "gunicorn-with-config", "gunicorn-without-config"])
def test_without_credentials_the_service_refuses_to_start(tmp_path, command):
    """Secure by default, however it is started: the two variables and the opt-out named."""
    result = serve({"DATABASE_URL": f"sqlite:///{tmp_path}/o.sqlite3", "AUTH_USERNAME": "",
                    "AUTH_PASSWORD": ""}, command=command)
    assert result.returncode != 0
    output = result.stderr + result.stdout
    for name in ("AUTH_USERNAME", "AUTH_PASSWORD", "ALLOW_UNAUTHENTICATED=true"):
        assert name in output, output[-2000:]
    assert not (tmp_path / "o.sqlite3").exists()  # refused before anything started
    if command is SERVE:
        assert result.stderr.count("\n") == 1 and result.returncode == os.EX_CONFIG
    opened = serve({"DATABASE_URL": f"sqlite:///{tmp_path}/o.sqlite3", "AUTH_USERNAME": "",
                    "AUTH_PASSWORD": "", "ALLOW_UNAUTHENTICATED": "true", "PORT": "bad"})
    assert "PORT must be" in opened.stderr  # the opt-out got past the check to the next one


def test_a_password_in_the_urls_query_is_never_logged(tmp_path):
    from service.config import redact_url
    assert redact_url(f"postgresql://db/x?sslmode=require&password={SECRET}") == \
        "postgresql://db/x?sslmode=require&password=***"
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "serve"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={"PATH": os.environ["PATH"], "HOST": "127.0.0.1", "PORT": str(port),
             "ALLOW_UNAUTHENTICATED": "true",
             "DATABASE_URL": f"postgresql://orders@127.0.0.1:1/db?connect_timeout=1&password={SECRET}"})
    time.sleep(12)
    process.terminate()
    log = process.communicate(timeout=30)[0].decode()
    assert "password=***" in log and SECRET not in log
    # Unreachable at start: said once, with why, then at most once every 30 s.
    assert log.count("could not prepare the store: the database cannot be reached") == 1
    assert log.count("error connecting in") <= 2, log[-3000:]


@pytest.mark.slow
def test_make_run_does_not_print_the_database_password(tmp_path):
    result = subprocess.run(["make", "--no-print-directory", "run", f"PORT={free_port()}",
                             f"DATABASE_URL=postgresql://orders:{SECRET}@127.0.0.1:1/db?connect_timeout=1"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, "WEB_CONCURRENCY": "lots"})  # stops it at once
    assert result.returncode != 0 and "WEB_CONCURRENCY" in result.stderr
    assert SECRET not in result.stdout + result.stderr
