"""Sesam's container limits without a container: a cgroup v1 of 128 MB and a quarter core.

A Sesam node runs a microservice with `docker.memory` 128 (MB) and `docker.cpu_quota` 25
(a quarter of one core) unless the system says otherwise. As root on a machine with the
cgroup v1 controllers mounted, `SesamLimits` puts a process tree under the same limits
and reads what the container would be charged (see shared/docs/machine.md).
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

from tests.support.memory import cgroup_anonymous_bytes

ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "cpu", "cpuacct")


def available() -> str | None:
    """None when cgroups can be made here, else why not."""
    if os.geteuid() != 0:
        return "making a cgroup needs root"
    missing = [name for name in CONTROLLERS if not (ROOT / name / "cgroup.procs").exists()]
    return f"no cgroup v1 controller {', '.join(missing)}" if missing else None


class SesamLimits:
    def __init__(self, memory_mb: int = 128, cpu_quota_percent: int = 25):
        self.name = f"orders-{uuid.uuid4().hex[:8]}"
        self.folders = {name: ROOT / name / self.name for name in CONTROLLERS}
        for folder in self.folders.values():
            folder.mkdir()
        self._write("memory", "memory.limit_in_bytes", memory_mb * 2 ** 20)
        self._write("cpu", "cpu.cfs_period_us", 100_000)
        self._write("cpu", "cpu.cfs_quota_us", 1000 * cpu_quota_percent)

    def _write(self, controller: str, name: str, value: int) -> None:
        (self.folders[controller] / name).write_text(str(value))

    def enter_command(self) -> list[str]:
        """A prefix that moves the command's shell into the cgroups, then execs it."""
        paths = " ".join(str(folder / "cgroup.procs") for folder in self.folders.values())
        return ["sh", "-c", f'for f in {paths}; do echo $$ > "$f"; done; exec "$@"', "sh"]

    @property
    def memory_stat(self) -> Path:
        return self.folders["memory"] / "memory.stat"

    def anonymous_mb(self) -> float:
        """Anonymous memory charged (what an OOM kill counts; the page cache is reclaimed)."""
        return cgroup_anonymous_bytes(self.memory_stat) / 2 ** 20

    def oom_kills(self) -> int:
        text = (self.folders["memory"] / "memory.oom_control").read_text()
        counts = dict(line.split() for line in text.splitlines())
        return int(counts.get("oom_kill", 0))

    def cpu_seconds(self) -> float:
        return int((self.folders["cpuacct"] / "cpuacct.usage").read_text()) / 1e9

    def remove(self) -> None:
        """Remove the cgroups; their processes must have ended."""
        for folder in self.folders.values():
            try:
                folder.rmdir()
            except OSError:
                pass
