"""Running the rules, and the report: one line per rule, a summary, the pipe settings the
source can be given, and JUnit XML for CI."""
from __future__ import annotations

from dataclasses import dataclass, field
from xml.etree import ElementTree

from tests.source_checker.probe import NotChecked, Probe, Violation
from tests.source_checker.rules import ALL_FLAGS, PAGE_SIZE, RULES, Rule
from tests.support.targets import Target

PASS, WARN, FAIL, NOT_CHECKED = "pass", "warn", "fail", "not checked"


@dataclass
class Outcome:
    rule: Rule
    status: str
    detail: str  # the evidence of a warn or fail, the reason for not checked, a note on a pass


@dataclass
class Report:
    url: str
    strict: bool
    outcomes: list[Outcome]
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, key: str) -> Outcome:
        return next(o for o in self.outcomes if o.rule.key == key)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def passed(self) -> bool:
        return self.count(FAIL) == 0

    def safe_flags(self) -> dict[str, str]:
        """Each continuation flag: "" when the source can be given it, else why not."""
        why = {flag: "" for flag in ALL_FLAGS}
        for outcome in self.outcomes:
            for flag in outcome.rule.flags:
                if outcome.status != PASS and not why[flag]:
                    why[flag] = f"{outcome.rule.key} {outcome.status}"
        if not why[PAGE_SIZE]:
            others = [flag for flag in ALL_FLAGS[:3] if why[flag]]
            why[PAGE_SIZE] = f"needs {', '.join(others)}" if others else ""
        return why


def check(target: Target, strict: bool = False, repeat: int = 3) -> Report:
    """Check a source against every rule, in order (the write rules come last)."""
    probe = Probe(target, repeat)
    outcomes = []
    for rule in RULES:
        try:
            outcomes.append(Outcome(rule, PASS, rule.check(probe)))
        except Violation as violation:
            failed = rule.level == "MUST" or strict
            outcomes.append(Outcome(rule, FAIL if failed else WARN, str(violation)))
        except NotChecked as reason:
            outcomes.append(Outcome(rule, NOT_CHECKED, str(reason)))
        except Exception as error:  # noqa: BLE001 (a source may answer what no rule foresaw)
            outcomes.append(Outcome(rule, FAIL, f"the check could not complete on what the "
                                                f"source sent: {type(error).__name__}: {error}"))
    return Report(target.pull_path, strict, outcomes)


def text(report: Report) -> str:
    lines = [f"Checking {report.url}" + (" (strict: SHOULD counts as MUST)" if report.strict else "")]
    lines += [f"  note: {note}" for note in report.notes]
    for o in report.outcomes:
        mark = {PASS: "pass", WARN: "WARN", FAIL: "FAIL", NOT_CHECKED: "----"}[o.status]
        lines.append(f"{mark}  {o.rule.level:<6} {o.rule.key:<24} {o.rule.says}")
        label = {PASS: "", WARN: "evidence", FAIL: "evidence", NOT_CHECKED: "not checked"}[o.status]
        if label:
            lines.append(f"{'':30} {label}: {o.detail}")
    lines.append(f"Summary: {report.count(PASS)} pass, {report.count(FAIL)} fail, "
                 f"{report.count(WARN)} warn, {report.count(NOT_CHECKED)} not checked: "
                 + ("PASSED" if report.passed else "FAILED"))
    lines.append("The pipe's json source can be given:")
    for flag, why in report.safe_flags().items():
        value = ("10000 (any size)" if flag == PAGE_SIZE else "true") if not why else \
            ("leave it out" if flag == PAGE_SIZE else "false")
        lines.append(f"  {flag + ':':<21} {value}" + (f"  ({why})" if why else ""))
    return "\n".join(lines)


def junit(report: Report) -> bytes:
    suite = ElementTree.Element("testsuite", name="sesam-source-check", tests=str(len(report.outcomes)),
                                failures=str(report.count(FAIL)), skipped=str(report.count(NOT_CHECKED)))
    for o in report.outcomes:
        case = ElementTree.SubElement(suite, "testcase", classname=o.rule.level, name=o.rule.key)
        if o.status == FAIL:
            ElementTree.SubElement(case, "failure", message=o.rule.says).text = o.detail
        elif o.status == NOT_CHECKED:
            ElementTree.SubElement(case, "skipped", message=o.detail)
        elif o.status == WARN:
            ElementTree.SubElement(case, "system-out").text = f"warning: {o.detail}"
    return ElementTree.tostring(suite, encoding="utf-8", xml_declaration=True)
