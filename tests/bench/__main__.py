"""`make bench`: the service against the baseline peer, the floor and the limit, in one run.

    python -m tests.bench [--orders 1000000] [--sizes 10000,100000,1000000] [--quick]
    python -m tests.bench --sesam-limits    # each contender in a cgroup of 128 MB, 0.25 CPU

For each size: generate seeded orders, load them through the store's bulk path (the load
rate is reported), start the real service under gunicorn with its production config, the
peer (tests/bench/peer.py), the floor (tests/bench/floor.py: the same gunicorn config
serving a Flask app that answers with the service's own bytes, no database) and nginx
serving a static file holding exactly the service's full-sync bytes. Then measure:
- full sync, timed with curl discarding the body (a native client, far from being the
  bottleneck); the body is checked separately by an untimed read (the entity count, and for
  the floor and the limit, the service's exact bytes) and every timed read by its size;
- the server's own CPU seconds per million entities served (its process tree, /proc);
- peak memory as a container is charged: PSS summed over the processes (RSS beside it),
  and with --sesam-limits the anonymous memory charged to the cgroup;
- an incremental pull of the last 1,000 changes, and small pulls of 10 under load (wrk);
- the push receiver: a full sync from Sesam into a store that holds the orders already
  (tests/bench/push.py), at the largest size or --push-orders.
Prints the tables and the verdict on the targets, and writes JSON, Markdown and a chart.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from service.store import open_store
from tests.bench import push, verify
from tests.bench.push import settle_postgres
from tests.support import cgroup
from tests.support.seeded_orders import orders
from tests.support.memory import MemorySampler, cpu_seconds, process_tree
from tests.support.databases import fresh_database, plain_sql
from tests.support.servers import ROOT, free_port, start_gunicorn


@dataclass
class Contender:
    name: str
    port: int
    root_pid: int
    full_path: str
    small_path: str
    incremental_path: str
    process: subprocess.Popen | None = None
    stop_fn: object = None
    limits: cgroup.SesamLimits | None = None  # its own cgroup, with --sesam-limits
    results: dict = field(default_factory=dict)


# Targets at 1,000,000 orders on the 2-core machine (issue 14): peak PSS during a full sync
# and the server's CPU seconds per million entities. Small pulls against the floor are a
# regression guard, no longer a target (Flask, the log line and gthread take that budget):
# the ratios accepted on 2026-12-02 (0.63x, 0.33x) less 15%.
TARGETS = {"sqlite": {"pss_mb": 64, "small_guard": 0.53, "cpu_per_million": 0.4},
           "postgresql": {"pss_mb": 80, "small_guard": 0.28, "cpu_per_million": 0.6}}
TARGET_ORDERS = 1_000_000


# ---- measuring ------------------------------------------------------------------------

def timed_sync(port: int, path: str) -> tuple[float, float, int]:
    """One full read by curl, the body discarded: (seconds, seconds to the first byte, bytes)."""
    if not shutil.which("curl"):
        seconds, first_byte, body = full_sync(port, path)
        return seconds, first_byte, len(body)
    result = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w",
                             "%{http_code} %{time_starttransfer} %{time_total} %{size_download}",
                             f"http://127.0.0.1:{port}{path}"],
                            capture_output=True, text=True, timeout=900, check=False)
    status, first_byte, seconds, size = (result.stdout.split() + ["0"] * 4)[:4]
    if status != "200":
        raise RuntimeError(f"curl {path}: HTTP {status} {result.stderr.strip()}")
    return float(seconds), float(first_byte), int(size)


def full_sync(port: int, path: str) -> tuple[float, float, bytes]:
    """One full read by Python, keeping the body (to check it, not to time the server)."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    connection.request("GET", path)
    response = connection.getresponse()
    first = response.read(1)
    first_byte = time.perf_counter() - started
    pieces = [first]
    while piece := response.read(1 << 20):
        pieces.append(piece)
    seconds = time.perf_counter() - started
    connection.close()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status} from {path}")
    return seconds, first_byte, b"".join(pieces)


def repeated_gets(port: int, path: str, count: int, expect: int) -> list[float]:
    """`count` GETs on one keep-alive connection; each body must hold `expect` entities."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        times.append(time.perf_counter() - started)
        if response.status != 200 or len(json.loads(body)) != expect:
            raise RuntimeError(f"wrong answer from {path}")
    connection.close()
    return times


def run_wrk_repeated(port: int, path: str, seconds: int, connections: int, runs: int) -> dict:
    """Several wrk runs: the median run's figures, with the range of requests/s. Runs
    differ a lot: gthread workers may split wrk's connections unevenly (all on one
    worker is about a third of the rate), and these machines are shared."""
    if not shutil.which("wrk"):
        return {"skipped": "wrk is not installed (apt-get install wrk)"}
    results = sorted((run_wrk(port, path, seconds, connections) for _ in range(runs)),
                     key=lambda run: run["requests_per_s"])
    rates = [run["requests_per_s"] for run in results]
    return {**results[len(results) // 2], "requests_per_s_min": rates[0],
            "requests_per_s_max": rates[-1], "runs": rates}


def run_wrk(port: int, path: str, seconds: int, connections: int) -> dict:
    output = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
                             f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True,
                            timeout=seconds + 60, check=False).stdout
    def latency(label):
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)", output, re.MULTILINE)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    return {"requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
            "p50_ms": latency(50), "p99_ms": latency(99),
            "errors": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else None}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


# ---- the three targets -----------------------------------------------------------------

def start_peer(count: int, seed: int, log: Path, limits: cgroup.SesamLimits | None) -> Contender:
    port = free_port()
    with open(log, "wb") as output:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen([*prefix(limits), sys.executable, "-m", "tests.bench.peer",
                                    str(port), str(count), str(seed)],
                                   cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    peer = Contender("peer", port, process.pid, "/api/orders", f"/api/orders?since={count // 2}&limit=10",
                     f"/api/orders?since={count - 1000}", process=process, limits=limits)
    wait_for(port, "/health", process, timeout=600)
    return peer


def prefix(limits: cgroup.SesamLimits | None) -> list[str]:
    return limits.enter_command() if limits else []


def updated_at(database_url: str, position: int) -> int:
    """The `_updated` of the position-th change (1-based), so `since` at it skips that many."""
    with plain_sql(database_url) as connection:
        return connection.execute("SELECT seq FROM changes ORDER BY seq LIMIT 1 OFFSET ?",
                                  (position - 1,)).fetchone()[0]


def write_bodies(www: Path, full_body: bytes, small_body: bytes) -> Path:
    """The service's full-sync and small-pull bytes, once, for the floor and the limit to serve."""
    www.mkdir()
    (www / "full.json").write_bytes(full_body)
    (www / "small.json").write_bytes(small_body)
    return www


def start_nginx(folder: Path, www: Path, limits: cgroup.SesamLimits | None) -> Contender | None:
    if not shutil.which("nginx"):
        return None
    folder.mkdir()
    os.chmod(folder, 0o755)
    port = free_port()
    (folder / "nginx.conf").write_text(f"""
worker_processes 2;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  default_type application/json;
  client_body_temp_path {folder}/tmp; proxy_temp_path {folder}/tmp; fastcgi_temp_path {folder}/tmp;
  uwsgi_temp_path {folder}/tmp; scgi_temp_path {folder}/tmp;
  server {{
    listen 127.0.0.1:{port};
    root {www};
    location = /health {{ return 200 '{{"status":"ok"}}'; }}
  }}
}}
""")
    (folder / "tmp").mkdir()
    process = subprocess.Popen([*prefix(limits), "nginx", "-c", str(folder / "nginx.conf"),
                                "-p", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_for(port, "/health", process)
    return Contender("limit", port, process.pid, "/full.json", "/small.json", "", process=process,
                     limits=limits)


def start_floor(folder: Path, www: Path, limits: cgroup.SesamLimits | None) -> Contender:
    server = start_gunicorn(f"sqlite:///{folder}/floor.sqlite3", folder, app="tests.bench.floor:app",
                            prefix=prefix(limits), MALLOC_ARENA_MAX="2",
                            FLOOR_FULL_BODY=str(www / "full.json"), FLOOR_SMALL_BODY=str(www / "small.json"))
    return Contender("floor", server.port, server.process.pid, "/api/orders", "/api/orders?limit=10", "",
                     process=server.process, stop_fn=server.stop, limits=limits)


def wait_for(port: int, path: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode} before it answered")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered on port {port}")


def stop(target: Contender) -> None:
    if target.stop_fn:
        target.stop_fn()
    elif target.process and target.process.poll() is None:
        target.process.send_signal(signal.SIGTERM)
        target.process.wait(30)
    if target.limits:
        target.results["oom_kills"] = target.limits.oom_kills()
        target.limits.remove()


# ---- one size --------------------------------------------------------------------------

def measure_full(target: Contender, repeats: int, count: int, reference: bytes | None) -> bytes:
    """Check one full read's bytes (untimed), then time `repeats` reads with curl."""
    body = full_sync(target.port, target.full_path)[2]
    if len(json.loads(body)) != count:
        raise RuntimeError(f"{target.name}: {len(json.loads(body))} entities, expected {count}")
    if reference is not None and body != reference:
        raise RuntimeError(f"{target.name}: full-sync bytes differ from the service's")
    stat = target.limits.memory_stat if target.limits else None
    walls, first_bytes, cpus, rss_peaks, pss_peaks, anonymous = [], [], [], [], [], []
    for _ in range(repeats):
        pids = process_tree(target.root_pid)
        sampler = MemorySampler(target.root_pid, stat)
        cpu_before = cpu_seconds(pids)
        seconds, first_byte, size = timed_sync(target.port, target.full_path)
        cpus.append(cpu_seconds(pids) - cpu_before)
        rss, pss = sampler.stop()
        if size != len(body):
            raise RuntimeError(f"{target.name}: a timed read got {size} bytes, not {len(body)}")
        walls.append(seconds)
        first_bytes.append(first_byte)
        rss_peaks.append(rss)
        pss_peaks.append(pss)
        anonymous.append(sampler.cgroup_anonymous_mb or 0.0)
    median = statistics.median(walls)
    target.results["full_sync"] = {
        "seconds_median": median, "seconds_min": min(walls), "seconds_max": max(walls),
        "entities_per_s": count / median, "mb_per_s": len(body) / median / 2 ** 20,
        "first_byte_ms_median": statistics.median(first_bytes) * 1000,
        "cpu_s_per_million": statistics.median(cpus) / (count / 1e6),
        "peak_pss_mb": max(pss_peaks), "peak_rss_mb": max(rss_peaks),
        "cgroup_anonymous_mb": max(anonymous) if stat else None,
        "bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    return body


def bench_size(count: int, args, scratch: Path, backend: str) -> dict:
    print(f"\n== {count:,} orders on {backend}", flush=True)
    folder = scratch / f"{backend}-{count}"
    folder.mkdir()

    def limits() -> cgroup.SesamLimits | None:
        return cgroup.SesamLimits() if args.sesam_limits else None

    with fresh_database(backend, folder) as url:
        store = open_store(url)
        store.migrate()
        started = time.perf_counter()
        store.bulk_load(orders(count, args.seed))
        load_seconds = time.perf_counter() - started
        store.close()
        print(f"   loaded through the store's bulk path in {load_seconds:.1f} s "
              f"({count / load_seconds:,.0f} orders/s)", flush=True)
        if backend == "postgresql":
            settle_postgres(url)
        # The production defaults (config.DEFAULTS), the image's allocator setting.
        service_limits = limits()
        server = start_gunicorn(url, folder, prefix=prefix(service_limits), LOG_LEVEL="INFO",
                                MALLOC_ARENA_MAX="2")
        # `_updated` values are the clock's, so the same pulls as the peer's (10 from the
        # middle, the last 1,000) start after the change at that position, not at a count.
        service = Contender("service", server.port, server.process.pid, "/api/orders",
                            f"/api/orders?since={updated_at(url, count // 2)}&limit=10",
                            f"/api/orders?since={updated_at(url, count - 1000)}",
                            process=server.process, stop_fn=server.stop, limits=service_limits)
        targets = [service]
        failed: dict[str, dict] = {}
        try:
            reference = measure_full(service, args.repeats, count, None)
            small = full_sync(service.port, service.small_path)[2]
            www = write_bodies(folder / "www", reference, small)
            starters = {"peer": lambda own: start_peer(count, args.seed, folder / "peer.log", own),
                        "floor": lambda own: start_floor(folder, www, own),
                        "limit": lambda own: start_nginx(folder / "nginx", www, own)}
            for name, start in starters.items():
                own = limits()
                try:
                    target = start(own)
                except RuntimeError as error:  # e.g. the peer, killed at 128 MB while loading
                    failed[name] = {"failed": f"did not start: {error}"[:200],
                                    "oom_kills": own.oom_kills() if own else 0}
                    if own:
                        own.remove()
                    continue
                if target is None:
                    if own:
                        own.remove()
                    continue
                targets.append(target)
                try:
                    measure_full(target, args.repeats, count, None if name == "peer" else reference)
                except (RuntimeError, OSError) as error:
                    target.results["failed"] = str(error)[:200]
            for target in targets:
                if "failed" not in target.results:
                    measure_pulls(target, args, count)
                print(f"   {target.name}: {json.dumps(target.results)}", flush=True)
        finally:
            for target in targets:
                stop(target)
    result = {"orders": count, "backend": backend, "load_seconds": load_seconds,
              "load_orders_per_s": count / load_seconds, "sesam_limits": args.sesam_limits,
              "targets": {**{target.name: target.results for target in targets}, **failed}}
    if "limit" not in result["targets"]:
        result["note"] = "nginx is not installed: the limit was skipped (apt-get install nginx-light)"
    return result


def measure_pulls(target: Contender, args, count: int) -> None:
    if target.incremental_path:
        times = repeated_gets(target.port, target.incremental_path, args.incremental_repeats,
                              min(1000, count))
        target.results["incremental_1000"] = {
            "ms_median": statistics.median(times) * 1000, "ms_p99": percentile(times, 0.99) * 1000}
    target.results["small_pulls"] = run_wrk_repeated(
        target.port, target.small_path, args.wrk_seconds, args.wrk_connections, args.wrk_runs)


# ---- reporting -------------------------------------------------------------------------

COLUMNS = ["orders", "backend", "target", "full sync s (median, min-max)", "entities/s", "MB/s",
           "first byte ms", "server CPU-s per M entities", "peak PSS MB", "peak RSS MB",
           "cgroup anon. MB", "incr. 1000 ms (median / p99)",
           "small pulls req/s (median, min-max; p50 / p99 ms)", "vs limit", "vs peer",
           "small pulls vs floor"]


def table(results: list[dict]) -> str:
    rows = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for result in results:
        for name, figures in result["targets"].items():
            cells = [f"{result['orders']:,}", result["backend"], name]
            if "full_sync" not in figures:
                cells.append(f"failed: {figures.get('failed', '?')}"
                             + (f" (OOM kills: {figures['oom_kills']})" if figures.get("oom_kills") else ""))
                rows.append("| " + " | ".join(cells + [""] * (len(COLUMNS) - len(cells))) + " |")
                continue
            rows.append("| " + " | ".join(cells + row_figures(result["targets"], name, figures)) + " |")
    return "\n".join(rows)


def row_figures(named: dict, name: str, figures: dict) -> list[str]:
    full = figures["full_sync"]
    incremental = figures.get("incremental_1000")
    small = figures.get("small_pulls", {})
    anonymous = full.get("cgroup_anonymous_mb")
    return [f"{full['seconds_median']:.3f} ({full['seconds_min']:.3f}-{full['seconds_max']:.3f})",
            f"{full['entities_per_s']:,.0f}", f"{full['mb_per_s']:.0f}",
            f"{full['first_byte_ms_median']:.1f}", f"{full['cpu_s_per_million']:.2f}",
            f"{full['peak_pss_mb']:.0f}", f"{full['peak_rss_mb']:.0f}",
            f"{anonymous:.0f}" if anonymous is not None else "",
            f"{incremental['ms_median']:.2f} / {incremental['ms_p99']:.2f}" if incremental else "n/a",
            (f"{small['requests_per_s']:,.0f} ({small['requests_per_s_min']:,.0f}-"
             f"{small['requests_per_s_max']:,.0f}; {small['p50_ms']:.2f} / {small['p99_ms']:.2f})"
             if "requests_per_s" in small else small.get("skipped", "")),
            ratio(named, name, "limit", "full_sync", "entities_per_s"),
            ratio(named, name, "peer", "full_sync", "entities_per_s"),
            ratio(named, name, "floor", "small_pulls", "requests_per_s")]


def ratio(named: dict, name: str, other: str, section: str, key: str) -> str:
    """The service's figure over another contender's, in the same run ("" where either is missing)."""
    mine, theirs = named[name].get(section, {}).get(key), named.get(other, {}).get(section, {}).get(key)
    return f"{mine / theirs:.2f}x" if name == "service" and mine and theirs else ""


def verdict(results: list[dict]) -> str:
    """The targets at 1,000,000 orders on the 2-core machine, judged on this run's figures."""
    lines = []
    for backend, target in TARGETS.items():
        runs = [r for r in results if r["backend"] == backend and not r.get("sesam_limits")]
        if not runs:
            continue
        run = max(runs, key=lambda r: r["orders"])
        named = run["targets"]
        full = named["service"]["full_sync"]
        mine = named["service"].get("small_pulls", {}).get("requests_per_s")
        floor = named.get("floor", {}).get("small_pulls", {}).get("requests_per_s")
        small = mine / floor if mine and floor else None  # judged unrounded
        size = f"{run['orders']:,} orders" + ("" if run["orders"] >= TARGET_ORDERS
                                             else f" (the targets are set at {TARGET_ORDERS:,})")
        checks = [("peak PSS during a full sync", f"{full['peak_pss_mb']:.0f} MB",
                   full["peak_pss_mb"] <= target["pss_mb"], f"<= {target['pss_mb']} MB"),
                  ("full-sync CPU", f"{full['cpu_s_per_million']:.2f} CPU-s per M entities",
                   full["cpu_s_per_million"] <= target["cpu_per_million"],
                   f"<= {target['cpu_per_million']}")]
        guard = small is not None and small >= target["small_guard"]
        lines.append(f"- **{backend}**, {size}: " + "; ".join(
            f"{what} {value} ({'met' if met else 'NOT met'}: {goal})" for what, value, met, goal in checks)
            + f"; small pulls against the floor {f'{small:.3f}x' if small else 'n/a'} (regression "
              f"guard, not a target: {'held' if guard else 'REGRESSED'}, >= {target['small_guard']}x)")
    return "\n".join(lines)


def chart(results: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, style in (("service", "o-"), ("peer", "s--"), ("floor", "d-."), ("limit", "^:")):
        points = [(r["orders"], r["targets"][name]["full_sync"]) for r in results
                  if "full_sync" in r["targets"].get(name, {}) and r["backend"] == results[0]["backend"]]
        if points:
            left.plot([p[0] for p in points], [p[1]["entities_per_s"] for p in points], style, label=name)
            right.plot([p[0] for p in points], [p[1]["peak_pss_mb"] for p in points], style, label=name)
    for axes, title, unit in ((left, "Full-sync throughput", "entities/s"),
                              (right, "Peak memory during a full sync", "PSS, MB (summed over the processes)")):
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel("orders")
        axes.set_ylabel(unit)
        axes.set_title(title)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
    right.axhline(128, color="red", linewidth=0.8)
    right.text(results[0]["orders"], 135, "Sesam's default 128 MB", color="red", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)) / 2 ** 20
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, {platform.platform()}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_000, help="the largest size (default %(default)s)")
    parser.add_argument("--sizes", default=None, help="comma-separated sizes (default: 10000,100000,ORDERS)")
    parser.add_argument("--backends", default="sqlite", help="sqlite and/or postgresql (TEST_POSTGRES_URL)")
    parser.add_argument("--quick", action="store_true", help="small sizes and short runs (CI)")
    parser.add_argument("--sesam-limits", action="store_true",
                        help="run each contender in its own cgroup of 128 MB and 25%% of a core, as a "
                             "Sesam node runs a microservice (root, cgroup v1)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--incremental-repeats", type=int, default=200)
    parser.add_argument("--wrk-seconds", type=int, default=5)
    parser.add_argument("--wrk-runs", type=int, default=3, help="wrk runs per target (the median is reported)")
    parser.add_argument("--wrk-connections", type=int, default=16)
    parser.add_argument("--push-orders", type=int, default=None,
                        help="orders in the push receiver's full sync (default: the largest size; 0: skip)")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "bench" / "results")
    args = parser.parse_args(argv)
    if args.quick:
        sizes = [2_000, 10_000]
        args.push_orders = 10_000 if args.push_orders is None else args.push_orders
        args.repeats, args.incremental_repeats, args.wrk_seconds, args.wrk_runs = 2, 30, 2, 1
    else:
        sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else \
            sorted({10_000, 100_000, args.orders} & set(range(1, args.orders + 1)) | {args.orders})
    if args.sesam_limits and cgroup.available():
        parser.error(f"--sesam-limits: {cgroup.available()}")
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        os.chmod(scratch, 0o755)  # nginx's workers run as another user and must read the file
        for backend in args.backends.split(","):
            for count in sizes:
                results.append(bench_size(count, args, Path(scratch), backend))
        pushes = [push.bench_push(args.push_orders or max(sizes), backend,
                                  Path(scratch) / f"push-{backend}", args.seed, args.sesam_limits)
                  for backend in args.backends.split(",") if args.push_orders != 0]
    report = {"machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "command": "python -m tests.bench " + " ".join(argv if argv is not None else sys.argv[1:]),
              "results": results, "push": pushes}
    text = table(results)
    verifies = [run["verify"] for run in pushes if "verify" in run]
    if pushes:
        text += ("\n\nThe push receiver: a full sync from Sesam, batches of 100, one serial client "
                 "(tests/bench/push.py)\n\n" + push.table(pushes))
    if verifies:
        text += ("\n\nThe feed's verification: the service's and the database's CPU "
                 "(tests/bench/verify.py)\n\n" + verify.table(verifies))
    judged = "\n".join(filter(None, [verdict(results), push.verdict(pushes), verify.verdict(verifies)]))
    if judged:
        text += f"\n\nTargets (on the 2-core machine, judged on this run):\n\n{judged}"
    print(f"\n{report['machine']}\n{report['when']}: {report['command']}\n\n{text}")
    args.out.mkdir(parents=True, exist_ok=True)
    stem = ("quick" if args.quick else "latest") + ("-sesam-limits" if args.sesam_limits else "")
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(f"Machine: {report['machine']}  \nRun: {report['when']}, "
                                         f"`{report['command']}`\n\n{text}\n")
    chart(results, args.out / f"{stem}.png")
    print(f"\nwrote {args.out}/{stem}.json, {stem}.md, {stem}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
