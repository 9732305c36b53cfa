"""Fixtures for the image tests: the engine, the built image, a running container.

These tests need a container engine (DOCKER, default `docker`; DOCKER_HOST as usual).
Without one they skip, unless REQUIRE_IMAGE_TESTS=1 (set by CI), which makes that a failure.
IMAGE_TEST_NETWORK=host runs containers on the host network (for an engine started with
--bridge=none, as .ci/docker-up.sh does); otherwise ports are published on 127.0.0.1.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field

import pytest

from tests.servers import ROOT, free_port

DOCKER = os.environ.get("DOCKER", "docker")
HOST_NETWORK = os.environ.get("IMAGE_TEST_NETWORK") == "host"
USER, PASSWORD = "sesam", "image-test-password"


def docker(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, check=check,
                          timeout=timeout)


def unavailable(reason: str) -> None:
    if os.environ.get("REQUIRE_IMAGE_TESTS") == "1":
        pytest.fail(f"REQUIRE_IMAGE_TESTS=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def engine() -> str:
    if shutil.which(DOCKER) is None:
        unavailable(f"no {DOCKER!r} command")
    if docker("info", check=False, timeout=30).returncode != 0:
        unavailable(f"no container engine answers to {DOCKER!r}")
    return DOCKER


@pytest.fixture(scope="session")
def image(engine) -> str:
    """Build the image with `make build`, from the project's Dockerfile as it is."""
    tag = f"test-{uuid.uuid4().hex[:8]}"
    name = "orders-sesam-source-test"
    flags = "--network host" if HOST_NETWORK else ""
    started = time.monotonic()
    subprocess.run(["make", "--no-print-directory", "build", f"IMAGE={name}", f"TAG={tag}",
                    f"DOCKER={DOCKER}", f"DOCKER_BUILD_FLAGS={flags}"], cwd=ROOT, check=True,
                   timeout=900)
    print(f"image built in {time.monotonic() - started:.1f} s")
    yield f"{name}:{tag}"
    docker("rmi", "-f", f"{name}:{tag}", check=False)


@dataclass
class Container:
    id: str
    port: int
    volume: str
    extra: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def inspect(self) -> dict:
        return json.loads(docker("inspect", self.id).stdout)[0]

    def wait_healthy(self, timeout: float = 60) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            state = self.inspect()["State"]
            if state.get("Health", {}).get("Status") == "healthy":
                return time.monotonic() - started
            if not state["Running"]:
                break
            time.sleep(0.5)
        raise AssertionError(f"container not healthy: {self.inspect()['State']}\n"
                             f"{docker('logs', self.id, check=False).stdout[-3000:]}")


def run_container(image: str, volume: str, **env: str) -> Container:
    """Start the image as Sesam would: 128 MB, Basic auth, the data directory a volume."""
    port = free_port() if HOST_NETWORK else None
    environment = {"AUTH_USERNAME": USER, "AUTH_PASSWORD": PASSWORD, **env}
    args = ["run", "-d", "--memory", "128m", "--memory-swap", "128m", "-v", f"{volume}:/data"]
    if HOST_NETWORK:
        environment.update(HOST="127.0.0.1", PORT=str(port))
        args += ["--network", "host"]
    else:
        args += ["-p", "127.0.0.1::5000"]
    for key, value in environment.items():
        args += ["-e", f"{key}={value}"]
    container_id = docker(*args, image).stdout.strip()
    if port is None:
        port = int(docker("port", container_id, "5000/tcp").stdout.strip().rsplit(":", 1)[1])
    return Container(container_id, port, volume)


@pytest.fixture(scope="session")
def volume(engine):
    name = f"orders-test-{uuid.uuid4().hex[:8]}"
    docker("volume", "create", name)
    yield name
    docker("volume", "rm", "-f", name, check=False)
