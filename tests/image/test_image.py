"""The image, built and run for real: health, contract, memory, user, SIGTERM, volume, push.

Run with `make test-image`. Each test prints its figures (run pytest with -s to see them).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import itertools
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.image.containers import HOST_NETWORK, PASSWORD, USER, anonymous_memory_mb, docker, run_container
from tests.support.servers import ROOT, basic_auth, free_port
from tests.support.credentials import tool_environment

LOAD = int(os.environ.get("IMAGE_TEST_ORDERS", "200000"))
BATCH = 5_000


def call(url: str, method: str = "GET", body: bytes | None = None, timeout: float = 120):
    headers = {**basic_auth(USER, PASSWORD), "Content-Type": "application/json"}
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read()


@pytest.fixture(scope="module")
def container(image, volume):
    running = run_container(image, volume)
    running.healthy_after = running.wait_healthy()
    yield running
    docker("rm", "-f", running.id, check=False)


def test_it_becomes_healthy_in_128_mb(container):
    took = container.healthy_after
    config = container.inspect()
    assert config["HostConfig"]["Memory"] == 128 * 1024 * 1024
    print(f"healthy after {took:.1f} s")


def test_it_runs_as_the_fixed_non_root_user(container):
    assert docker("exec", container.id, "id", "-u").stdout.strip() == "10001"
    # gunicorn itself is PID 1, so SIGTERM from `docker stop` reaches it.
    cmdline = docker("exec", container.id, "cat", "/proc/1/cmdline").stdout
    assert "gunicorn" in cmdline
    files = docker("exec", container.id, "sh", "-c", "ls -A /app; ls -A /app/service").stdout.split()
    assert "tests" not in files and ".git" not in files and ".venv" not in files


def test_workers_load_bytecode_compiled_at_build_time(container):
    """Every module a worker imports comes with bytecode that is current: none is compiled
    at start."""
    check = """if True:
        import importlib.util, os, sys, service.wsgi
        ours = [m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)
                and m.__file__.startswith(("/app/", "/opt/venv/")) and m.__file__.endswith(".py")]
        print(len(ours), [f for f in ours if not os.path.exists(importlib.util.cache_from_source(f))])"""
    output = docker("exec", "-e", "LOG_LEVEL=ERROR", "-e", "DATABASE_URL=sqlite:////tmp/check.sqlite3",
                    "-w", "/app", container.id, "python", "-c", check).stdout.strip()
    assert output.endswith(" []"), output


def test_auth_is_enforced_and_health_is_open(container):
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(f"{container.url}/api/orders", timeout=10)
    assert error.value.code == 401
    with urllib.request.urlopen(f"{container.url}/health", timeout=10) as response:
        assert response.status == 200


def test_without_credentials_the_image_refuses_to_start(image):
    """A plain `docker run` must not give anyone the orders: no credentials, no service."""
    result = docker("run", "--rm", "--memory", "128m", image, check=False, timeout=120)
    assert result.returncode == 78, result.stdout + result.stderr  # EX_CONFIG
    assert "AUTH_USERNAME and AUTH_PASSWORD are not set" in result.stderr
    assert "ALLOW_UNAUTHENTICATED=true" in result.stderr and "Traceback" not in result.stderr


def test_the_source_checker_passes_strictly_against_the_container(container):
    result = subprocess.run(
        [sys.executable, "-m", "tests.source_checker", f"{container.url}/api/orders",
         "--allow-writes", "--strict"],
        cwd=ROOT, env={**os.environ, "URL_USER": USER, "URL_PASSWORD": PASSWORD}, capture_output=True,
        text=True, timeout=600, check=False)
    print(result.stdout[-600:])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert ", 0 fail, 0 warn, 1 not checked: PASSED" in result.stdout


def post_orders(url: str, count: int) -> float:
    started = time.monotonic()
    for start in range(1, count + 1, BATCH):
        batch = [{"id": i, "Username": f"user{i}", "Orders": "Thinkpad X1 Carbon",
                  "TotalSum": i % 9000 + 0.25} for i in range(start, min(start + BATCH, count + 1))]
        status, _ = call(f"{url}/api/orders", "POST", json.dumps(batch).encode())
        assert status == 200
    return time.monotonic() - started


def cgroup_peak_mb(container) -> float:
    """The cgroup's own peak (v2 memory.peak, v1 max_usage_in_bytes): it counts page cache too."""
    for path in ("/sys/fs/cgroup/memory.peak", "/sys/fs/cgroup/memory/memory.max_usage_in_bytes"):
        result = docker("exec", container.id, "cat", path, check=False)
        if result.returncode == 0 and result.stdout.strip().isdigit():
            return int(result.stdout) / 2 ** 20
    return float("nan")



class ContainerMemorySampler(threading.Thread):
    """Sample the container's anonymous memory (master, workers, health checks) until stopped."""

    def __init__(self, container):
        super().__init__(daemon=True)
        self.container, self.peak_mb, self.samples = container, 0.0, 0
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            self.peak_mb = max(self.peak_mb, anonymous_memory_mb(self.container))
            self.samples += 1
            time.sleep(0.05)

    def stop(self) -> float:
        self.done.set()
        self.join(15)
        return self.peak_mb


def read_slowly(url: str) -> tuple[int, bytes]:
    """Read a full pull at a bounded pace, so the stream stays open for several seconds
    and the server has to hold back instead of buffering the body."""
    request = urllib.request.Request(url, headers=basic_auth(USER, PASSWORD))
    pieces = []
    with urllib.request.urlopen(request, timeout=600) as response:
        while piece := response.read(256 * 1024):
            pieces.append(piece)
            time.sleep(0.03)
        return response.status, b"".join(pieces)


def test_a_full_pull_of_200k_orders_streams_inside_128_mb(container):
    sampler = ContainerMemorySampler(container)
    sampler.start()
    took = post_orders(container.url, LOAD)
    load_peak = sampler.stop()
    sampler = ContainerMemorySampler(container)
    sampler.start()
    started = time.monotonic()
    status, body = read_slowly(f"{container.url}/api/orders")
    pulled = time.monotonic() - started
    memory_peak = sampler.stop()
    entities = json.loads(body)
    assert status == 200 and len(entities) >= LOAD
    assert all(a["_updated"] < b["_updated"] for a, b in itertools.pairwise(entities))
    state = container.inspect()["State"]
    assert state["Running"] and not state["OOMKilled"]
    print(f"loaded {LOAD} orders in {took:.1f} s (peak anonymous memory {load_peak:.1f} MB); full pull of {len(entities)} entities "
          f"({len(body) / 2 ** 20:.1f} MB) in {pulled:.2f} s; peak anonymous memory of the container "
          f"{memory_peak:.1f} MB ({sampler.samples} samples); cgroup peak incl. page cache "
          f"{cgroup_peak_mb(container):.1f} MB; limit 128 MB; not OOM-killed")
    assert pulled > 2 and sampler.samples > 3 and 0 < memory_peak < 128 and load_peak < 128


def test_docker_stop_lets_a_running_stream_finish(container):
    result = {}

    def reader():
        request = urllib.request.Request(f"{container.url}/api/orders", headers=basic_auth(USER, PASSWORD))
        with urllib.request.urlopen(request, timeout=120) as response:
            first = response.read(4096)
            time.sleep(1.5)  # still reading when SIGTERM arrives
            result["body"] = first + response.read()

    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(0.5)
    started = time.monotonic()
    docker("stop", "-t", "30", container.id)
    stopped = time.monotonic() - started
    thread.join(60)
    entities = json.loads(result["body"])
    state = container.inspect()["State"]
    print(f"docker stop took {stopped:.1f} s with a stream of {len(entities)} entities in flight")
    assert len(entities) >= LOAD and state["ExitCode"] == 0 and stopped < 10


def test_data_survives_a_restart_on_the_volume(image, container):
    again = run_container(image, container.volume)
    try:
        again.wait_healthy()
        _, body = call(f"{again.url}/api/orders?since={LOAD}&limit=5")
        _, full = call(f"{again.url}/api/orders", timeout=600)
        assert len(json.loads(full)) >= LOAD and json.loads(body)
    finally:
        docker("rm", "-f", again.id, check=False)


def readme_install_steps() -> list[str]:
    """The README's install commands, as a user would paste them: every one runs up to
    the node (nothing in this block needs one)."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Installing into a Sesam node\n.*?```sh\n(.*?)```", readme, re.DOTALL)[1]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_the_readmes_install_steps_run_as_written_and_make_push_publishes_right(engine, tmp_path):
    """run-image answers as Sesam calls it, make push publishes what reads back right, and
    sesam-install adds the service to a node's config folder without touching the rest."""
    registry = os.environ.get("REGISTRY", "127.0.0.1:5000")
    try:
        urllib.request.urlopen(f"http://{registry}/v2/", timeout=5)
    except OSError:
        if os.environ.get("REQUIRE_IMAGE_TESTS") == "1":
            pytest.fail(f"no registry at {registry}")
        pytest.skip(f"no registry at {registry} (set REGISTRY)")
    node = tmp_path / "node-config"
    (node / "pipes").mkdir(parents=True)
    (node / "pipes" / "crm-person-collect.conf.json").write_text('{"_id": "crm-person-collect"}')
    (node / "prod-env.json").write_text('{"node-env": "prod", "crm-url": "https://crm"}')
    tag = f"push-test-{int(time.time())}"
    placeholders = {"<a long random password>": "readme-install-password",
                    "<your registry>": registry, "<your node config>": str(node)}
    script = ["set -euo pipefail"]
    for line in readme_install_steps():
        for placeholder, value in placeholders.items():
            line = line.replace(placeholder, value)
        assert "<" not in line.split("#")[0], f"a placeholder the test does not know: {line}"
        script.append(line)
    environment = tool_environment(PORT=str(free_port()), TAG=tag, ALLOW_DIRTY="1",  # not CI's registry port
                                   PYTEST_ARGS="-q -p no:cacheprovider")
    if HOST_NETWORK:
        environment.update(DOCKER_BUILD_FLAGS="--network host", RUN_IMAGE_ARGS="--host-network")
    remembered = ROOT / ".service-port"
    before = remembered.read_text() if remembered.exists() else None
    try:
        result = subprocess.run(["bash", "-c", "\n".join(script)], cwd=ROOT, env=environment,
                                capture_output=True, text=True, timeout=1500, check=False)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
        local = json.loads(docker("inspect", "orders-source-local").stdout)[0]
    finally:
        docker("rm", "--force", "orders-source-local", check=False)
        if before is None:
            remembered.unlink(missing_ok=True)
        else:
            remembered.write_text(before)
    # make run-image: the bundled system's limits and environment, test profile
    assert local["HostConfig"]["Memory"] == 128 * 2 ** 20 and local["HostConfig"]["NanoCpus"] == 25 * 10 ** 7
    env = dict(item.split("=", 1) for item in local["Config"]["Env"])
    assert env["LOAD_SAMPLE_ORDERS"] == "true" and env["THREADS"] == "8"
    assert env["AUTH_PASSWORD"] == "readme-install-password"
    # make check-source --strict against it, with the service's own credentials
    assert ": PASSED" in result.stdout and " passed" in result.stdout  # make push ran the tests
    # make push: what the registry holds
    image = f"{registry}/orders-sesam-source"
    inspect = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw", "--config",
                              f"docker://{image}:{tag}"], capture_output=True, text=True, check=True)
    config = json.loads(inspect.stdout)["config"]
    assert config["User"] == "10001:10001"
    assert "5000/tcp" in config["ExposedPorts"]
    assert "service.healthcheck" in " ".join(config["Healthcheck"]["Test"])
    # make sesam-install: ours added with the pushed reference, theirs untouched
    variables = json.loads((node / "prod-env.json").read_text())
    assert variables["orders-source-image"] == f"{image}:{tag}" and variables["crm-url"] == "https://crm"
    assert (node / "pipes" / "crm-person-collect.conf.json").read_text() == '{"_id": "crm-person-collect"}'
    assert (node / "systems" / "orders-source.conf.json").exists()
    print(f"README install steps ran; pushed and read back {image}:{tag}")
