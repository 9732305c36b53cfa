"""Run the image here as a Sesam node runs it, so what the node will see is seen first.

    python -m tests.sesam_config.run_image --image REF [--profile test] [--host-network]
    (make run-image: builds the image first)

From the bundled system (`sesam-config/systems/orders-source.conf.json`): its
`docker.environment`, with `$ENV(...)` from the profile's variables and the image given;
its `docker.memory` and `docker.cpu_quota` as the container's limits; its `docker.port`
published on 127.0.0.1:$PORT. The secrets come from this shell, as the tools' do:
AUTH_USERNAME and AUTH_PASSWORD (what Sesam sends), passed by name so no password shows in
`ps`; the store is the container's own SQLite file, gone with the container, as on a node
without persistent disk (a node needs PostgreSQL: sesam-config/README.md). The container is
detached and named orders-source-local; it replaces an earlier one of that name.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

from tests.sesam_config import CONFIG, SYSTEM_ID

DOCKER = os.environ.get("DOCKER") or "docker"
NAME = f"{SYSTEM_ID}-local"
SECRETS = {f"{SYSTEM_ID}-username": "AUTH_USERNAME", f"{SYSTEM_ID}-password": "AUTH_PASSWORD"}
LOCAL_STORE = "sqlite:////data/orders.sqlite3"
REFERENCE = re.compile(r"^\$(ENV|SECRET)\(([^)]+)\)$")


def container_environment(system: dict, variables: dict) -> tuple[dict[str, str], list[str]]:
    """The container's variables with values, and the names whose value stays in this
    process's environment (the secrets)."""
    values: dict[str, str] = {}
    secret_names: list[str] = []
    for name, raw in system["docker"]["environment"].items():
        match = REFERENCE.match(str(raw))
        if match is None:
            values[name] = str(raw)
        elif match[1] == "ENV":
            values[name] = str(variables[match[2]])
        elif match[2] in SECRETS:
            secret_names.append(name)
        else:  # the database URL
            values[name] = LOCAL_STORE
    return values, secret_names


def docker_run(system: dict, variables: dict, image: str, port: int, host_network: bool) -> list[str]:
    values, secret_names = container_environment(system, variables)
    limits = system["docker"]
    args = [DOCKER, "run", "--detach", "--name", NAME,
            "--memory", f"{limits['memory']}m", "--memory-swap", f"{limits['memory']}m",
            "--cpus", str(limits["cpu_quota"] / 100)]
    if host_network:  # an engine without a bridge (CI): the service binds the port itself
        values.update(HOST="127.0.0.1", PORT=str(port))
        args += ["--network", "host"]
    else:
        args += ["--publish", f"127.0.0.1:{port}:{limits['port']}"]
    for name, value in values.items():
        args += ["--env", f"{name}={value}"]
    for name in secret_names:
        args += ["--env", name]  # the value from this environment, never on the command line
    return [*args, image]


def wait_healthy(port: int, seconds: float = 90) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3) as reply:
                if reply.status == 200:
                    return True
        except OSError:
            pass
        if subprocess.run([DOCKER, "inspect", "-f", "{{.State.Running}}", NAME],
                          capture_output=True, text=True, check=False).stdout.strip() != "true":
            return False
        time.sleep(0.5)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sesam_config.run_image",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True)
    parser.add_argument("--profile", default="test", choices=("prod", "test"),
                        help="whose variables: test-env.json (the sample orders) or prod-env.json")
    parser.add_argument("--host-network", action="store_true",
                        help="for an engine without a bridge network (as CI's)")
    args = parser.parse_args(argv)
    missing = [name for name in SECRETS.values() if not os.environ.get(name)]
    if missing:
        print("set AUTH_USERNAME and AUTH_PASSWORD: the credentials Sesam will send "
              "(the image refuses to start without them)", file=sys.stderr)
        return 2
    system = json.loads((CONFIG / "systems" / f"{SYSTEM_ID}.conf.json").read_text())
    variables = json.loads((CONFIG / f"{args.profile}-env.json").read_text())
    port = int(os.environ.get("PORT") or 5000)
    subprocess.run([DOCKER, "rm", "--force", NAME], capture_output=True, check=False)
    started = subprocess.run(docker_run(system, variables, args.image, port, args.host_network),
                             capture_output=True, text=True, check=False)
    if started.returncode != 0:
        print(f"docker run failed: {started.stderr.strip()}", file=sys.stderr)
        return 1
    if not wait_healthy(port):
        logs = subprocess.run([DOCKER, "logs", "--tail", "20", NAME], capture_output=True,
                              text=True, check=False)
        print(f"{NAME} did not become healthy; its last log lines:\n{logs.stdout}{logs.stderr}",
              file=sys.stderr)
        return 1
    docker = system["docker"]
    print(f"{args.image} runs as {NAME} on http://127.0.0.1:{port}, as the node runs it: "
          f"{docker['memory']} MB, {docker['cpu_quota']}% of a core, the {args.profile} "
          f"profile's variables. `make pull` and `make check-source` talk to it; "
          f"logs: docker logs -f {NAME}; stop: docker rm -f {NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
