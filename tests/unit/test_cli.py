"""`python -m service migrate | load-samples`: the schema command."""
import subprocess
import sys

from tests.support.databases import plain_sql
from tests.support.servers import ROOT


def run(database_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service", *args], cwd=ROOT, capture_output=True,
                          text=True, env={"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"}, timeout=60, check=False)


def test_migrate_creates_the_schema_and_load_samples_fills_an_empty_store(database_url):
    result = run(database_url, "migrate")
    assert result.returncode == 0 and "schema ready" in result.stdout
    assert "orders-test" not in result.stdout  # a password in the URL is never printed
    assert run(database_url, "load-samples").stdout.strip() == "loaded the sample orders"
    assert "nothing loaded" in run(database_url, "load-samples").stdout
    with plain_sql(database_url) as connection:
        assert connection.execute("SELECT count(*) FROM changes").fetchone()[0] == 3


def test_a_bad_setting_is_a_clear_error():
    result = run("mysql://nope", "migrate")
    assert result.returncode == 1 and "DATABASE_URL" in result.stderr
