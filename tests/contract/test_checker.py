"""The source checker finds what it claims: each deliberately broken source in
broken_sources.py is flagged by the right rule, and a correct one raises no false alarm."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.contract.broken_sources import DEFECTS, Source, serving
from tests.source_checker import check, text
from tests.source_checker.report import FAIL, NOT_CHECKED, PASS, WARN
from tests.source_checker.rules import RULES
from tests.support.targets import http_target
from tests.support.credentials import tool_environment

ROOT = Path(__file__).resolve().parents[2]
LEVEL = {rule.key: rule.level for rule in RULES}


def run_checker(*args: str, user: str | None = None, password: str | None = None) -> subprocess.CompletedProcess:
    env = tool_environment(URL_USER=user or "", URL_PASSWORD=password or "")
    return subprocess.run([sys.executable, "-m", "tests.source_checker", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("defect", DEFECTS)
def test_each_defect_is_flagged_by_its_rule_with_evidence(defect):
    key, _ = DEFECTS[defect]
    with serving(Source(defect)) as url:
        report = check(http_target("url", url, None, None, writable=False))
    outcome = report[key]
    assert outcome.status == (FAIL if LEVEL[key] == "MUST" else WARN), text(report)
    assert "GET /items" in outcome.detail or "_updated" in outcome.detail, outcome.detail


def test_a_correct_source_with_iso_string_updated_passes_every_must_behind_a_query_and_auth():
    source = Source(query={"dataset": "orders"}, credentials=("reader", "s3cret"))
    with serving(source) as url:
        report = check(http_target("url", url + "?dataset=orders", "reader", "s3cret",
                                   writable=False))
    musts = {o.rule.key: o.status for o in report.outcomes if o.rule.level == "MUST"}
    assert set(musts.values()) == {PASS}, text(report)
    assert report["auth-enforced"].status == PASS and report["utc-is-utc"].status == PASS
    assert report["string-updated-uniform"].status == PASS
    assert report.passed and report.safe_flags() == {flag: "" for flag in report.safe_flags()}
    # read-only: what needs writes is listed as not checked, with the reason
    assert report["delete-is-tombstone"].status == NOT_CHECKED
    assert "--allow-writes" in report["delete-is-tombstone"].detail


def test_the_command_reports_passes_warns_and_writes_junit(tmp_path):
    with serving(Source(), path="/") as url:
        bare = url.rstrip("/")  # a URL without a path is checked at "/", not at /api/orders
        relaxed = run_checker(bare, "--junit", str(tmp_path / "relaxed.xml"))
        strict = run_checker(bare, "--strict", "--junit", str(tmp_path / "strict.xml"))
    assert relaxed.returncode == 0, relaxed.stdout
    assert "WARN  SHOULD repeated-parameter-400" in relaxed.stdout
    assert "evidence: 2 not a 400 with a JSON reason: GET /?since=1&since=2 -> 200" in relaxed.stdout
    assert ", 0 fail, 2 warn, 5 not checked: PASSED" in relaxed.stdout
    assert "  page_size:            10000 (any size)" in relaxed.stdout
    assert strict.returncode == 1 and "FAIL  SHOULD repeated-parameter-400" in strict.stdout
    relaxed_xml = ElementTree.parse(tmp_path / "relaxed.xml").getroot()
    strict_xml = ElementTree.parse(tmp_path / "strict.xml").getroot()
    assert (relaxed_xml.get("tests"), relaxed_xml.get("failures"), relaxed_xml.get("skipped")) \
        == (str(len(RULES)), "0", "5")
    failed = [case.get("name") for case in strict_xml.iter("testcase") if case.find("failure") is not None]
    assert failed == ["bad-limit-400", "repeated-parameter-400"]


def test_a_broken_source_fails_the_command_with_the_rule_and_the_pipe_settings_it_must_avoid():
    with serving(Source("limit-ignored")) as url:
        result = run_checker(url)
    assert result.returncode == 1
    assert "FAIL  MUST   limit-caps" in result.stdout
    assert "evidence: GET /items?limit=1 returned 40 entities" in result.stdout
    assert "  page_size:            leave it out  (limit-caps fail)" in result.stdout
    assert "  supports_since:       true" in result.stdout


def test_a_source_that_cannot_be_reached_fails_json_array_and_says_why():
    with serving(Source()) as url:
        pass  # the port is closed again
    result = run_checker(url, "--repeat", "2", "--timeout", "5")
    assert result.returncode == 1
    assert "FAIL  MUST   json-array" in result.stdout and "no complete reply" in result.stdout


def test_the_emulator_keeps_the_query_and_one_state_per_url(tmp_path):
    state = tmp_path / "state.json"
    emulate = [sys.executable, "-m", "tests.sesam_emulator", "--state", str(state)]
    with serving(Source(query={"dataset": "orders"})) as url, serving(Source()) as other:
        first = subprocess.run([*emulate, "--url", url + "?dataset=orders", "--page-size", "7"],
                               cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
        second = subprocess.run([*emulate, "--url", other], cwd=ROOT, capture_output=True,
                                text=True, timeout=60, check=False)
        again = subprocess.run([*emulate, "--url", url + "?dataset=orders"], cwd=ROOT,
                               capture_output=True, text=True, timeout=60, check=False)
    assert first.returncode == 0 and "full run: 40 entities in 7 request(s)" in first.stdout, first.stderr
    assert second.returncode == 0 and "full run: 40 entities" in second.stdout  # not from the first's offset
    assert again.returncode == 0 and "incremental run: 0 entities" in again.stdout
    assert set(json.loads(state.read_text())["pipes"]) == {url + "?dataset=orders", other}


def test_the_emulator_exits_quietly_when_its_reader_goes_away(tmp_path):
    with serving(Source()) as url:
        result = subprocess.run(
            f"{sys.executable} -m tests.sesam_emulator --state {tmp_path}/s.json --url {url} "
            "--show | head -1", shell=True, cwd=ROOT, capture_output=True, text=True, timeout=60,
            check=False)
    assert result.stdout.startswith("full run: 40 entities")
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr


def test_a_max_updated_header_that_is_not_json_is_a_finding_of_its_rule():
    source = Source(headers=[("X-Dataset-Max-Updated", "2026-12-01T10:00:00Z")])  # not encoded
    with serving(source) as url:
        report = check(http_target("url", url, None, None, writable=False))
    assert report["max-updated-header"].status == WARN
    assert "is not JSON-encoded" in report["max-updated-header"].detail


def test_a_rule_that_meets_what_no_rule_foresaw_fails_alone_and_says_so(monkeypatch):
    from tests.source_checker import report as report_module
    broken = next(rule for rule in RULES if rule.key == "limit-caps")

    def surprised(probe):
        raise KeyError("_updated")

    monkeypatch.setattr(report_module, "RULES",
                        [dataclasses.replace(r, check=surprised) if r is broken else r for r in RULES])
    with serving(Source()) as url:
        report = report_module.check(http_target("url", url, None, None, writable=False))
    assert report["limit-caps"].status == FAIL
    assert report["limit-caps"].detail.startswith("the check could not complete")
    assert report["paging-reassembles"].status == PASS
