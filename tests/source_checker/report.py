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
    pages: bool = True  # whether the pipe sets page_size (reads with limit)

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
        if not self.pages:
            why[PAGE_SIZE] = "the pipe reads without paging"
        elif not why[PAGE_SIZE]:
            others = [flag for flag in ALL_FLAGS[:3] if why[flag]]
            why[PAGE_SIZE] = f"needs {', '.join(others)}" if others else ""
        return why


def check(target: Target, strict: bool = False, repeat: int = 3, pages: bool = True) -> Report:
    """Check a source against every rule, in order (the write rules come last). `pages`:
    whether the pipe pages (sets page_size); without, a rule that only paging needs is not
    judged. A finding that only repeats the cause of a failed rule it needs is reported
    as not checked, naming that rule: one cause, one failure."""
    probe = Probe(target, repeat)
    outcomes = []
    for rule in RULES:
        if not pages and rule.flags == (PAGE_SIZE,):
            outcomes.append(Outcome(rule, NOT_CHECKED, "only a pipe that pages (page_size) "
                                                       "depends on it, and this one does not"))
            continue
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
    return Report(target.pull_path, strict, _one_failure_per_cause(outcomes), pages=pages)


def _one_failure_per_cause(outcomes: list[Outcome]) -> list[Outcome]:
    by_key = {o.rule.key: o for o in outcomes}

    def root_causes(key: str, seen: frozenset = frozenset()) -> set[str]:
        """The failed rules at the bottom of what `key` needs (none: `key` stands alone)."""
        causes: set[str] = set()
        for need in by_key[key].rule.needs:
            if need in by_key and need not in seen and by_key[need].status == FAIL:
                causes |= root_causes(need, seen | {key}) or {need}
        return causes

    result = []
    for o in outcomes:
        causes = sorted(root_causes(o.rule.key)) if o.status in (FAIL, WARN) else []
        if causes:
            o = Outcome(o.rule, NOT_CHECKED, f"needs {' and '.join(causes)}, which failed: "
                                             "fix that first, then check again")
        result.append(o)
    return result


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
