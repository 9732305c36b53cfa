"""Fixtures for the image tests: the engine, the built image, a running container.

These tests need a container engine (DOCKER, default `docker`; DOCKER_HOST as usual).
Without one they skip, unless REQUIRE_IMAGE_TESTS=1 (set by CI), which makes that a failure.
IMAGE_TEST_NETWORK=host runs containers on the host network (for an engine started with
--bridge=none, as .ci/docker-up.sh does); otherwise ports are published on 127.0.0.1.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid

import pytest

from tests.image.containers import DOCKER, HOST_NETWORK, docker
from tests.support.servers import ROOT


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


@pytest.fixture(scope="session")
def volume(engine):
    name = f"orders-test-{uuid.uuid4().hex[:8]}"
    docker("volume", "create", name)
    yield name
    docker("volume", "rm", "-f", name, check=False)
