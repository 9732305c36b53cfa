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
    """Start the image as Sesam does by default (docker.memory 128, docker.cpu_quota 25:
    128 MB and a quarter of one core), with Basic auth and the data folder on `volume`
    (a volume's name, or a host folder)."""
    port = free_port() if HOST_NETWORK else None
    environment = {"AUTH_USERNAME": USER, "AUTH_PASSWORD": PASSWORD, **env}
    args = ["run", "-d", "--memory", "128m", "--memory-swap", "128m", "--cpus", "0.25",
            "-v", f"{volume}:/data"]
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


def anonymous_memory_mb(container: Container) -> float:
    """Memory the container cannot give back (cgroup v1 total_rss, v2 anon): what an OOM
    kill counts. Read from the host when its cgroup is visible there (no process started
    in a container that has a quarter of a core), else inside the container."""
    full_id = container.inspect()["Id"]
    for path, key in ((f"/sys/fs/cgroup/memory/docker/{full_id}/memory.stat", "total_rss"),
                      (f"/sys/fs/cgroup/system.slice/docker-{full_id}.scope/memory.stat", "anon")):
        if os.path.exists(path):
            return _stat(open(path).read(), key)
    for path, key in (("/sys/fs/cgroup/memory.stat", "anon"),
                      ("/sys/fs/cgroup/memory/memory.stat", "total_rss")):
        result = docker("exec", container.id, "cat", path, check=False, timeout=10)
        if result.returncode == 0:
            return _stat(result.stdout, key)
    raise AssertionError("the container's cgroup reports no memory.stat")


def _stat(text: str, key: str) -> float:
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value) / 2 ** 20
    raise AssertionError(f"no {key} in memory.stat")
