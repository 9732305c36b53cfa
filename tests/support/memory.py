"""Peak memory of a process tree (RSS and PSS, summed), sampled from a separate process;
and the CPU time of a process tree.

    python -m tests.support.memory ROOT_PID [CGROUP_MEMORY_STAT]   # until stdin closes

With a cgroup's memory.stat it also samples the anonymous memory charged to the cgroup (v1
`rss`, v2 `anon`): the kernel keeps no peak of that figure, only of usage with page cache.

Sampling runs in its own process so that it never competes for the measuring client's
GIL: a sampler thread inside the benchmark delayed the client's reads by milliseconds.
"""
from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
from pathlib import Path

INTERVAL_S = 0.01


def process_tree(root: int) -> list[int]:
    """The root and every descendant, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(parents.get(pid, []))
    return tree


def memory_kb(pids: list[int]) -> tuple[int, int]:
    """Summed RSS and PSS (kB) of the processes, from smaps_rollup."""
    rss = pss = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        rss += _kb(text, "Rss")
        pss += _kb(text, "Pss")
    return rss, pss


def _kb(smaps_rollup: str, field: str) -> int:
    found = re.search(rf"^{field}:\s+(\d+)", smaps_rollup, re.MULTILINE)
    return int(found.group(1)) if found else 0


class MemorySampler:
    """Start sampling a process tree; stop() returns the peak (RSS MB, PSS MB)."""

    def __init__(self, root: int, cgroup_stat: Path | None = None):
        self.cgroup_anonymous_mb: float | None = None
        arguments = [str(root)] + ([str(cgroup_stat)] if cgroup_stat else [])
        self._process = subprocess.Popen([sys.executable, "-m", "tests.support.memory", *arguments],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         cwd=Path(__file__).resolve().parents[2])
        started = self._process.stdout and self._process.stdout.readline() == b"sampling\n"
        if not started:  # the first sample is taken
            raise RuntimeError("the memory sampler did not start")

    def stop(self) -> tuple[float, float]:
        output, _ = self._process.communicate(timeout=30)  # closes stdin: the signal to stop
        peaks = json.loads(output)
        if "cgroup_anonymous_bytes" in peaks:
            self.cgroup_anonymous_mb = peaks["cgroup_anonymous_bytes"] / 2 ** 20
        return peaks["rss_kb"] / 1024, peaks["pss_kb"] / 1024


def cgroup_anonymous_bytes(stat: Path) -> int:
    """Anonymous memory charged to a cgroup, from its memory.stat (v1 `rss`, v2 `anon`)."""
    fields = dict(line.split() for line in stat.read_text().splitlines())
    return int(fields.get("rss", fields.get("anon", 0)))


def main(root: int, cgroup_stat: Path | None = None) -> None:
    pids = process_tree(root)
    peak_rss = peak_pss = peak_anonymous = 0
    announced = False
    while True:  # at least one sample, however short the measurement
        rss, pss = memory_kb(pids)
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        if cgroup_stat:
            peak_anonymous = max(peak_anonymous, cgroup_anonymous_bytes(cgroup_stat))
        if not announced:
            print("sampling", flush=True)
            announced = True
        if select.select([sys.stdin], [], [], INTERVAL_S)[0]:
            break  # stdin closed (or written to): stop
    peaks = {"rss_kb": peak_rss, "pss_kb": peak_pss}
    if cgroup_stat:
        peaks["cgroup_anonymous_bytes"] = peak_anonymous
    print(json.dumps(peaks), flush=True)


def cpu_seconds(pids: list[int]) -> float:
    """CPU time the processes' threads have had so far, to the nanosecond (the first field
    of /proc/<pid>/task/<tid>/schedstat; /proc/<pid>/stat counts in 10 ms ticks, too coarse
    for a full sync of 10,000 entities). Threads that have ended are not counted."""
    nanoseconds = 0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                nanoseconds += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
            except (OSError, IndexError, ValueError):
                continue
    return nanoseconds / 1e9


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None)
