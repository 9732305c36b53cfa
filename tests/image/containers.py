"""Running the image: the engine command, a container as Sesam starts one."""
from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field

from tests.support.servers import free_port

DOCKER = os.environ.get("DOCKER", "docker")
HOST_NETWORK = os.environ.get("IMAGE_TEST_NETWORK") == "host"
USER, PASSWORD = "sesam", "image-test-password"


def docker(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, check=check,
                          timeout=timeout)


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
