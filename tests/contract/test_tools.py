"""The tools as a user runs them: through make, with one set of credentials for this service
(AUTH_USERNAME/AUTH_PASSWORD) and only URL_USER/URL_PASSWORD for any URL given; a 401 stops
a tool at once with one line; the checker's exit codes, its paging option, one failure per
cause (issue 26)."""
from __future__ import annotations

import json
import subprocess

import pytest

from tests.contract.broken_sources import Source, serving
from tests.support.servers import ROOT, start_gunicorn
from tests.support.credentials import tool_environment

USER, PASSWORD = "sesam", "tools-test-password"


def make(*args: str, **env: str) -> subprocess.CompletedProcess:
    """`make -s <args>` with a clean slate of credentials, plus `env`."""
    return subprocess.run(["make", "--no-print-directory", "-s", *args, f"VENV={ROOT}/.venv"],
                          cwd=ROOT, env=tool_environment(**env), capture_output=True, text=True, timeout=300,
                          check=False)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tools")
    server = start_gunicorn(f"sqlite:///{folder}/orders.sqlite3", folder, AUTH_USERNAME=USER,
                            AUTH_PASSWORD=PASSWORD, LOAD_SAMPLE_ORDERS="true", ALLOW_UNAUTHENTICATED="false")
    yield server
    server.stop()


def test_every_tool_talks_to_this_service_on_its_port_with_its_own_credentials(service, tmp_path):
    own = {"PORT": str(service.port), "AUTH_USERNAME": USER, "AUTH_PASSWORD": PASSWORD}
    entities = tmp_path / "entities.json"
    entities.write_text(json.dumps([{"_id": "7", "Username": "ann", "Orders": "Pixel",
                                     "TotalSum": "~f499.00"}]))
    pulled = make("pull", f"ARGS=--reset --state {tmp_path}/state.json", **own)
    pushed = make("push-entities", f"FILE={entities}", **own)
    checked = make("check-source", "ARGS=--strict --repeat 2", **own)
    assert pulled.returncode == 0 and "full run: 3 entities" in pulled.stdout, pulled.stderr
    assert pushed.returncode == 0 and "1 entities in 1 request(s)" in pushed.stdout, pushed.stderr
    assert checked.returncode == 0 and ": PASSED" in checked.stdout, checked.stdout[-2000:]


@pytest.mark.parametrize("tool", ["pull", "push-entities", "check-source"])
def test_a_401_stops_a_tool_at_once_with_one_line_naming_the_variables(service, tmp_path, tool):
    entities = tmp_path / "entities.json"
    entities.write_text('[{"_id": "8", "Username": "bo", "Orders": "x", "TotalSum": 1}]')
    args = [f"ARGS=--state {tmp_path}/state.json"] if tool == "pull" else \
        [f"FILE={entities}"] if tool == "push-entities" else []
    result = make(tool, *args, PORT=str(service.port))
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = [text for text in result.stderr.splitlines() if not text.startswith("make")]
    assert "answered 401" in line and "AUTH_USERNAME and AUTH_PASSWORD are not set" in line
    assert result.stdout == ""
    wrong = make(tool, *args, PORT=str(service.port), AUTH_USERNAME=USER, AUTH_PASSWORD="wrong")
    assert "were refused" in wrong.stderr and wrong.returncode == 2


def test_a_url_given_gets_only_its_own_credentials_never_the_services():
    with serving(Source(credentials=(USER, PASSWORD))) as url:
        leaked = make("check-source", f"URL={url}", AUTH_USERNAME=USER, AUTH_PASSWORD=PASSWORD)
        given = make("check-source", f"URL={url}", URL_USER=USER, URL_PASSWORD=PASSWORD)
    assert leaked.returncode == 2 and "URL_USER and URL_PASSWORD are not set" in leaked.stderr
    assert given.returncode == 0 and ": PASSED" in given.stdout, given.stdout[-2000:]


def test_the_checkers_exit_codes_as_documented_directly_and_through_make():
    import sys
    with serving(Source("limit-ignored")) as broken, serving(Source(credentials=(USER, "x"))) as locked:
        direct = [subprocess.run([sys.executable, "-m", "tests.source_checker", url], cwd=ROOT,
                                 capture_output=True, text=True, check=False, timeout=300).returncode
                  for url in (broken, locked)]
        through_make = make("check-source", f"URL={broken}")
        paging_off = make("check-source", f"URL={broken}", "ARGS=--no-paging")
    assert direct == [1, 2]  # a rule failed; could not check
    assert through_make.returncode == 2  # make's own code for any failure, as the README says
    assert through_make.stdout.splitlines()[-6].endswith(": FAILED")
    # A pipe without page_size never sends limit: the rule is not judged, the check passes.
    assert paging_off.returncode == 0, paging_off.stdout[-2000:]
    assert "----  MUST   limit-caps" in paging_off.stdout
    assert "page_size:            leave it out  (the pipe reads without paging)" in paging_off.stdout


@pytest.mark.parametrize("defect, cause", [("truncated", "complete-reads"),
                                           ("since-inclusive", "since-exclusive"),
                                           ("ties", "no-ties-at-page-cut")])
def test_one_cause_is_reported_once_and_what_depends_on_it_is_not_checked(defect, cause):
    from tests.source_checker import check
    from tests.source_checker.report import FAIL, NOT_CHECKED
    from tests.support.targets import http_target
    with serving(Source(defect)) as url:
        report = check(http_target("url", url, None, None, writable=False))
    assert [o.rule.key for o in report.outcomes if o.status == FAIL] == [cause]
    dependent = [o for o in report.outcomes if o.status == NOT_CHECKED and "which failed" in o.detail]
    assert dependent and all(f"needs {cause}" in o.detail for o in dependent)
