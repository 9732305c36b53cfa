"""A throwaway PostgreSQL cluster for the tests, where the server programs are installed.

Started on first use when TEST_POSTGRES_URL is not set: a temporary data folder, a free
port on 127.0.0.1, its socket in that folder, no fsync (nothing in it needs to survive).
Stopped and removed at the end of the run (tests/conftest.py), and at exit in any case.
PostgreSQL refuses to run as root, so under root it runs as the `postgres` user (or
`nobody`), which then owns the folder.
"""
from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.servers import free_port

USER, PASSWORD, DATABASE = "orders", "orders-test", "orders_test"


def server_programs() -> Path | None:
    """The folder holding initdb and pg_ctl: on the PATH, or Debian's newest version."""
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda path: int(Path(path).parts[-3]))
    return Path(found[-1]).parent if found else None


class ThrowawayCluster:
    """`durable`: with PostgreSQL's default durability (fsync, synchronous_commit and
    full_page_writes on), for a benchmark that must count what a commit costs."""

    def __init__(self, programs: Path, durable: bool = False):
        self.programs = programs
        self.folder = Path(tempfile.mkdtemp(prefix="orders-test-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.owner = _unprivileged_user() if os.geteuid() == 0 else None
        if self.owner:
            os.chown(self.folder, self.owner.pw_uid, self.owner.pw_gid)
        password_file = self.folder / "password"
        password_file.write_text(PASSWORD)
        self._run("initdb", "-D", str(self.data), "-U", USER, "-A", "scram-sha-256",
                  f"--pwfile={password_file}", "-E", "UTF8", "--no-sync")
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                   + ("" if durable else "-c fsync=off -c synchronous_commit=off -c full_page_writes=off ")
                   + "-c max_connections=300")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")
        self.admin_url = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/postgres"
        import psycopg
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {DATABASE}")
        self.url = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run([str(self.programs / program), *args], capture_output=True,
                                text=True, timeout=120, check=False, cwd=self.folder,
                                user=self.owner.pw_uid if self.owner else None,
                                group=self.owner.pw_gid if self.owner else None)
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed ({result.returncode}): {result.stderr.strip()}")

    def stop(self) -> None:
        if self.data.exists():
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            finally:
                shutil.rmtree(self.folder, ignore_errors=True)


def _unprivileged_user() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root, and there is neither a postgres nor a nobody user "
                       "to run the throwaway PostgreSQL as")


_cluster: ThrowawayCluster | None = None


def throwaway_url() -> str | None:
    """The URL of this run's throwaway cluster, started on first use; None where the server
    programs are not installed."""
    global _cluster
    if _cluster is None:
        programs = server_programs()
        if programs is None:
            return None
        _cluster = ThrowawayCluster(programs)
        atexit.register(stop_throwaway)
        os.environ["TEST_POSTGRES_URL"] = _cluster.url  # what the tests run share it
    return _cluster.url


def stop_throwaway() -> None:
    global _cluster
    if _cluster is not None:
        cluster, _cluster = _cluster, None
        os.environ.pop("TEST_POSTGRES_URL", None)
        cluster.stop()
