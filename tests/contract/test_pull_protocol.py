"""This service against every rule of the source checker, strictly: the MUST rules of the
JSON pull protocol and the SHOULD rules of its own policy (tests/source_checker/rules.py)."""
from __future__ import annotations

import pytest

from tests.source_checker.report import NOT_CHECKED, PASS
from tests.source_checker.rules import RULES

# A rule about timestamps in `_updated`; this service's `_updated` is an integer sequence.
NOT_FOR_INTEGERS = {"utc-is-utc"}


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.key)
def test_the_service_keeps_the_rule(report, rule):
    outcome = report[rule.key]
    if rule.key in NOT_FOR_INTEGERS:
        assert outcome.status == NOT_CHECKED, outcome.detail
    else:
        assert outcome.status == PASS, f"{outcome.status}: {outcome.detail}"


def test_every_continuation_flag_is_safe(report):
    assert report.safe_flags() == {flag: "" for flag in report.safe_flags()}
