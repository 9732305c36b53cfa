"""The rules a Sesam JSON source is checked against, each with its level and its basis.

MUST: stated by the JSON pull protocol, the entity model or the continuation flags
(docs.sesam.io; the notes with their sources are in shared/docs/sesam.md). SHOULD: good
practice, and this service's own stricter policy. A check returns a note when the rule
holds, raises Violation with the evidence when it does not, and NotChecked with the reason
when it cannot tell.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from tests.source_checker.probe import NotChecked, Probe, Violation, ids, is_ascending, \
    snippet, updated_kind
from tests.source_checker.writes import pick_id, order
import itertools

PULL = "docs.sesam.io/hub/json-pull.html"
ENTITIES = "docs.sesam.io/hub/entity-data-model.html"
FLAGS = "docs.sesam.io/hub/configuration-sources-json.html (continuation flags)"
TRACKING = "docs.sesam.io/hub/configuration-sinks-dataset.html (deletion tracking on a full run)"
POLICY = "this service's policy (README)"

SINCE, CHRONOLOGICAL, COMPARABLE, PAGE_SIZE = \
    "supports_since", "is_chronological", "is_since_comparable", "page_size"
BAD_SINCE = ["abc", "1.5", "-1", "", "1e3", "0x10", "99999999999999999999999"]
BAD_LIMIT = ["0", "-3", "abc", "", "2.5", "99999999999999999999999"]
ERROR_TEXT = re.compile(r"error|exception|traceback|<class|fail|\b[45]\d\d\b", re.IGNORECASE)
CLOCK_SKEW = timedelta(minutes=2)


@dataclass(frozen=True)
class Rule:
    key: str
    level: str                 # "MUST" or "SHOULD"
    says: str
    basis: str
    flags: tuple[str, ...]     # the pipe flags that are safe only while this rule holds
    check: Callable[[Probe], str]
    # Rules whose failure makes this one's finding a repeat of that cause (report.py).
    needs: tuple[str, ...] = ()


RULES: list[Rule] = []
ARRAY = ("json-array",)
# Rules that compare reads with each other: a read that breaks, closes early or turns an
# error into data makes them fail too, on the same cause.
WHOLE_READS = (*ARRAY, "complete-reads", "no-empty-when-failing", "no-error-in-200")


def rule(key: str, level: str, says: str, basis: str, flags: tuple[str, ...] = (),
         needs: tuple[str, ...] = ARRAY):
    def register(check: Callable[[Probe], str]) -> Callable[[Probe], str]:
        RULES.append(Rule(key, level, says, basis, flags, check, tuple(n for n in needs if n != key)))
        return check
    return register


ALL_FLAGS = (SINCE, CHRONOLOGICAL, COMPARABLE, PAGE_SIZE)


@rule("json-array", "MUST", "a GET of the URL answers 200 with a JSON array", PULL, ALL_FLAGS, needs=())
def json_array(probe: Probe) -> str:
    return f"{len(probe.first.require())} elements"


@rule("id-is-string", "MUST", "every element is an object with a non-empty string _id",
      ENTITIES, ALL_FLAGS)
def id_is_string(probe: Probe) -> str:
    entities = probe.first.require()
    bad = [(i, e) for i, e in enumerate(entities)
           if not isinstance(e, dict) or not isinstance(e.get("_id"), str) or not e["_id"]]
    if bad:
        raise Violation(f"{len(bad)} of {len(entities)}, e.g. " + "; ".join(
            f"element {i}: {snippet(json.dumps(e), width=80)}" for i, e in bad[:3]))
    return f"{len(entities)} entities"


@rule("updated-valid", "MUST", "every entity has an _updated, a string or an integer, "
      "the same kind for all", PULL, (SINCE, COMPARABLE, CHRONOLOGICAL))
def updated_valid(probe: Probe) -> str:
    entities = [e for e in probe.first.require() if isinstance(e, dict)]
    if not entities:
        raise NotChecked("the source serves no entities")
    missing = [e.get("_id") for e in entities if "_updated" not in e]
    if missing:
        raise Violation(f"{len(missing)} entities have no _updated, e.g. _id {missing[:3]}")
    kinds: dict[str, list] = {}
    for entity in entities:
        kind = updated_kind(entity["_updated"])
        kinds.setdefault(kind.__name__ if kind else "neither", []).append(entity["_updated"])
    if len(kinds) != 1 or "neither" in kinds:
        raise Violation("kinds of _updated: " + "; ".join(
            f"{name} (e.g. {json.dumps(values[0])})" for name, values in kinds.items()))
    return f"all {next(iter(kinds)).replace('str', 'strings').replace('int', 'integers')}"


@rule("deleted-is-boolean", "MUST", "_deleted, where present, is true or false", ENTITIES)
def deleted_is_boolean(probe: Probe) -> str:
    entities = [e for e in probe.first.require() if isinstance(e, dict)]
    bad = [e for e in entities if "_deleted" in e and not isinstance(e["_deleted"], bool)]
    if bad:
        raise Violation("; ".join(f"_id {e.get('_id')!r}: _deleted {json.dumps(e['_deleted'])}"
                                  for e in bad[:3]))
    tombstones = sum(1 for e in entities if e.get("_deleted") is True)
    return f"{tombstones} tombstones in the full read"


@rule("ascending-updated", "MUST", "the entities come in ascending _updated order, as Sesam "
      "compares them (integers by value, strings character by character)", FLAGS,
      (CHRONOLOGICAL, PAGE_SIZE))
def ascending_updated(probe: Probe) -> str:
    entities = probe.full()
    for i, (a, b) in enumerate(itertools.pairwise(entities)):
        if a["_updated"] > b["_updated"]:
            raise Violation(f"entity {i} (_id {a['_id']!r}) has _updated {json.dumps(a['_updated'])}"
                            f", the next one (_id {b['_id']!r}) {json.dumps(b['_updated'])}, "
                            f"which sorts before it")
    return f"{len(entities)} entities in order"


@rule("since-exclusive", "MUST", "?since=X serves only the entities whose _updated sorts after "
      "X, in order; never the one at X", PULL, (SINCE, CHRONOLOGICAL),
      needs=WHOLE_READS)
def since_exclusive(probe: Probe) -> str:
    entities = probe.full()
    ordered = is_ascending(entities)
    known = set(ids(entities))
    for k in sorted({0, 1, len(entities) // 2, len(entities) - 2, len(entities) - 1} - {-1}):
        value = entities[k]["_updated"]
        read = probe.read(since=value)
        page = read.require()
        again = [e for e in page if isinstance(e, dict) and e.get("_updated") == value]
        if again:
            raise Violation(f"{read.request} returned _id {again[0].get('_id')!r}, whose _updated "
                            "is the since itself")
        expected = [e for e in entities if e["_updated"] > value]
        if ordered and page != expected:
            raise Violation(f"{read.request} returned {len(page)} entities, not the "
                            f"{len(expected)} after it in the full read{difference(page, expected)}")
        strangers = [i for i in ids(page) if i not in known]
        if strangers:
            raise Violation(f"{read.request} returned ids the full read does not have: {strangers[:3]}")
    return "at the first, second, middle and last two entities"


@rule("limit-caps", "MUST", "?limit=N serves at most N entities: the first N of the full read, "
      "or with since, the first N after it", PULL, (PAGE_SIZE,),
      needs=(*WHOLE_READS, "since-exclusive"))
def limit_caps(probe: Probe) -> str:
    entities = probe.full()
    for limit in sorted({1, 2, 3, 7, max(1, len(entities) - 1)}):
        read = probe.read(limit=limit)
        page = read.require()
        if len(page) > limit:
            raise Violation(f"{read.request} returned {len(page)} entities")
        if page != entities[:min(limit, len(entities))]:
            raise Violation(f"{read.request} returned {ids(page)[:5]}, not the first of the full "
                            f"read {ids(entities[:min(limit, 5)])}")
    if is_ascending(entities):  # the docs' example: since=20&limit=3 serves 21, 22, 23
        value = entities[len(entities) // 2]["_updated"]
        read = probe.read(since=value, limit=3)
        expected = [e for e in entities if e["_updated"] > value][:3]
        if read.require() != expected:
            raise Violation(f"{read.request} returned {ids(read.require())[:5]}, not {ids(expected)}")
    return "limit 1, 2, 3, 7 and n-1, and since with limit 3"


@rule("paging-reassembles", "MUST", "paging with limit, then since=<last _updated>&limit, until "
      "an empty page, reassembles the full read for every page size", FLAGS, (PAGE_SIZE,),
      needs=(*WHOLE_READS, "since-exclusive", "limit-caps", "no-ties-at-page-cut"))
def paging_reassembles(probe: Probe) -> str:
    entities = probe.sorted_full()
    prefix = min(len(entities), 60)
    sizes = sorted({*range(1, 13), 25, 45} & set(range(1, len(entities) + 2)))
    for size in sizes:
        paged, request = page_through(probe, size, prefix)
        if paged[:prefix] != entities[:prefix]:
            raise Violation(f"page size {size}: {request} left the pages "
                            f"differing from the full read{difference(paged[:prefix], entities[:prefix])}")
    size = max(1, math.ceil(len(entities) / 3))
    paged, request = page_through(probe, size, None)
    if paged != entities:
        raise Violation(f"page size {size}, to the end: {request} ended pages that differ from "
                        f"the full read{difference(paged, entities)}")
    return f"sizes {sizes[0]}-{sizes[-1]} over the first {prefix}, and {size} to the end"


def page_through(probe: Probe, size: int, enough: int | None) -> tuple[list, str]:
    """Page as Sesam does until a page is empty (or `enough` entities arrived)."""
    paged: list = []
    since, request = None, ""
    for _ in range(len(probe.first.entities or ()) + 3):
        read = probe.read(limit=size) if since is None else probe.read(since=since, limit=size)
        request, page = read.request, read.require()
        if not page or not isinstance(page[-1], dict):
            return paged, request
        paged.extend(page)
        since = page[-1].get("_updated")
        if enough is not None and len(paged) >= enough:
            return paged, request
    raise Violation(f"page size {size}: paging did not end ({request})")


@rule("no-ties-at-page-cut", "MUST", "no two entities share an _updated where a page can end: "
      "with since exclusive, the rest of a tie cut by limit is lost", FLAGS,
      (CHRONOLOGICAL, PAGE_SIZE),
      needs=(*WHOLE_READS, "since-exclusive", "limit-caps"))
def no_ties_at_page_cut(probe: Probe) -> str:
    entities = probe.sorted_full()
    starts = [i for i in range(len(entities) - 1)
              if entities[i]["_updated"] == entities[i + 1]["_updated"]
              and (i == 0 or entities[i - 1]["_updated"] != entities[i]["_updated"])]
    for start in starts[:3]:
        value = entities[start]["_updated"]
        tie = [e["_id"] for e in entities[start:] if e["_updated"] == value]
        first = probe.read(limit=1) if start == 0 else \
            probe.read(since=entities[start - 1]["_updated"], limit=1)
        after = probe.read(since=value, limit=len(tie))
        arrived = set(ids(first.require())) | set(ids(after.require()))
        lost = [key for key in tie if key not in arrived]
        if lost:
            raise Violation(f"_ids {tie[:4]} share _updated {json.dumps(value)}; {first.request} "
                            f"ended after {ids(first.require())[:1]}, and {after.request} "
                            f"skipped {lost[:4]}: a pipe paging there loses them")
    return "no ties" if not starts else f"{len(starts)} ties, none lost at a page cut"


@rule("complete-reads", "MUST", "every full read is complete: a failure is an error status or a "
      "body that breaks off, never a shorter array that closes", TRACKING)
def complete_reads(probe: Probe) -> str:
    longest = max((r for r in probe.repeats if r.entities), key=lambda r: len(r.entities or ()),
                  default=None)
    if longest is None or longest.entities is None:
        raise NotChecked("no full read returned entities")
    for number, read in enumerate(probe.repeats, 1):
        short = read.entities
        if short and len(short) < len(longest.entities) and \
                ids(short) == ids(longest.entities)[:len(short)]:
            raise Violation(f"{read.request} (full read {number} of {len(probe.repeats)}) returned "
                            f"{len(short)} entities and closed the array after _id "
                            f"{ids(short)[-1]!r}; another full read returned "
                            f"{len(longest.entities)}: a full run would delete the other "
                            f"{len(longest.entities) - len(short)} downstream")
    return f"{len(probe.repeats)} full reads agree"


@rule("no-empty-when-failing", "MUST", "an empty array means there is nothing to serve, never "
      "that the source could not read its data", TRACKING)
def no_empty_when_failing(probe: Probe) -> str:
    sizes = [None if r.entities is None else len(r.entities) for r in probe.repeats]
    if not any(sizes):
        raise NotChecked("no full read returned entities; check again while the source has some")
    for number, read in enumerate(probe.repeats, 1):
        if read.entities == []:
            raise Violation(f"{read.request} (full read {number} of {len(sizes)}) returned [] "
                            f"where another returned {max(s or 0 for s in sizes)} entities: a "
                            f"full run would mark them all deleted")
    return f"{len(sizes)} full reads, none empty"


@rule("no-error-in-200", "MUST", "an error comes with a 4xx/5xx status, never as text inside a "
      "200 (Sesam reads a 200 as data)", PULL, needs=())
def no_error_in_200(probe: Probe) -> str:
    for read in probe.reads:
        if read.status != 200:
            continue
        text = error_text(read)
        if text:
            raise Violation(f"{read.request} -> 200 with {text}")
    return f"{len(probe.reads)} reads so far"


def error_text(read) -> str:
    """Where a 200 body carries an error message: a string element, or text after valid JSON."""
    if read.entities is not None:
        for position, element in enumerate(read.entities):
            if isinstance(element, str) and ERROR_TEXT.search(element):
                return f"element {position}: {snippet(element)}"
        return ""
    try:
        json.loads(read.body)
    except ValueError as error:  # where the JSON stops making sense, text may follow
        position = getattr(error, "pos", 0)
        body = read.body.decode("utf-8", "replace")
        if ERROR_TEXT.search(body[position:]):
            return f"at character {position}: {snippet(body, position)}"
    return ""


@rule("content-type-json", "SHOULD", "the Content-Type is application/json", POLICY, needs=())
def content_type_json(probe: Probe) -> str:
    kind = probe.first.headers.get("content-type", "")
    if kind.split(";")[0].strip().lower() != "application/json":
        raise Violation(f"{probe.first.request} -> Content-Type {kind!r}")
    return kind


@rule("updated-unique", "SHOULD", "_updated is unique and strictly increasing (a change "
      "sequence), so no page cut can split a tie", POLICY)
def updated_unique(probe: Probe) -> str:
    entities = probe.sorted_full()
    for a, b in itertools.pairwise(entities):
        if a["_updated"] == b["_updated"]:
            raise Violation(f"_ids {a['_id']!r} and {b['_id']!r} share _updated "
                            f"{json.dumps(a['_updated'])}")
    return "strictly increasing"


ISO = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(?P<zone>Z|[+-]\d\d:?\d\d)?$")


@rule("string-updated-uniform", "SHOULD", "string _updated values share one width (and, as "
      "timestamps, one time zone), so comparing strings compares the values", FLAGS,
      (COMPARABLE,))
def string_updated_uniform(probe: Probe) -> str:
    values = [e["_updated"] for e in probe.full()]
    if not isinstance(values[0], str):
        return "_updated is an integer: integers compare by value"
    widths = sorted({len(v) for v in values})
    if len(widths) > 1:
        short = min(values, key=len)
        long = max(values, key=len)
        raise Violation(f"widths {widths[0]} to {widths[-1]}, e.g. {short!r} and {long!r}: "
                        f"{min(short, long)!r} sorts first as a string")
    zones = {m.group("zone") for m in map(ISO.match, values) if m}
    if zones and (len(zones) > 1 or None in zones):
        raise Violation(f"timestamps in time zones {sorted(z or 'none' for z in zones)}")
    return f"all {widths[0]} characters" + (f", zone {zones.pop()}" if zones else "")


@rule("utc-is-utc", "SHOULD", "timestamps marked Z or with an offset are true to it: none lies "
      "ahead of the server's clock (local time labelled Z does, east of Greenwich, and jumps "
      "back an hour each autumn)", POLICY)
def utc_is_utc(probe: Probe) -> str:
    values = [e["_updated"] for e in probe.full()]
    stamps = [timestamp(v) for v in values]
    if not all(stamps):
        raise NotChecked("_updated is not a string timestamp with a time zone")
    date = probe.first.headers.get("date")
    clock, whose = (parsedate_to_datetime(date), f"the server's Date header ({date})") if date \
        else (datetime.now(UTC), "the checker's clock")
    newest = max(s for s in stamps if s)
    if newest > clock + CLOCK_SKEW:
        raise Violation(f"the newest _updated, {values[stamps.index(newest)]!r}, is "
                        f"{newest - clock} ahead of {whose}: local time labelled as UTC?")
    return f"the newest is {clock - newest} behind {whose}"


def timestamp(value) -> datetime | None:
    if not isinstance(value, str) or not (match := ISO.match(value)) or not match.group("zone"):
        return None
    return datetime.fromisoformat(value.replace(" ", "T"))


@rule("max-updated-header", "SHOULD", "X-Dataset-Max-Updated, when sent with a full read, is "
      "the last entity's _updated", PULL)
def max_updated_header(probe: Probe) -> str:
    header = probe.first.headers.get("x-dataset-max-updated")
    if header is None:
        raise NotChecked("the source sends no X-Dataset-Max-Updated")
    if probe.first.headers.get("x-dataset-filtered") == "true":
        raise NotChecked("X-Dataset-Filtered: true")
    last = probe.full()[-1]["_updated"]
    try:
        stated = json.loads(header)
    except ValueError:
        raise Violation(f"X-Dataset-Max-Updated {header!r} is not JSON-encoded") from None
    if stated != last:
        raise Violation(f"X-Dataset-Max-Updated {header}, the last entity's _updated {json.dumps(last)}")
    return header


def check_400(reads: list) -> str:
    wrong = []
    for read in reads:
        try:
            body_ok = bool(json.loads(read.body))
        except ValueError:
            body_ok = False
        if read.status != 400 or not body_ok:
            wrong.append(f"{read.request} -> {read.status} {snippet(read.body, width=60)}")
    if wrong:
        raise Violation(f"{len(wrong)} not a 400 with a JSON reason: " + "; ".join(wrong[:3]))
    return f"{len(reads)} requests"


@rule("bad-since-400", "SHOULD", "a since that cannot be an integer _updated is refused: 400 "
      "with a JSON reason", POLICY, needs=())
def bad_since_400(probe: Probe) -> str:
    if isinstance(probe.full()[0]["_updated"], str):
        raise NotChecked("_updated is a string: any string may be a since")
    return check_400([probe.read(since=value) for value in BAD_SINCE])


@rule("bad-limit-400", "SHOULD", "a limit that is not a positive integer is refused: 400 with "
      "a JSON reason", POLICY, needs=())
def bad_limit_400(probe: Probe) -> str:
    return check_400([probe.read(limit=value) for value in BAD_LIMIT])


@rule("repeated-parameter-400", "SHOULD", "a repeated since or limit is refused: 400 with a "
      "JSON reason", POLICY, needs=())
def repeated_parameter_400(probe: Probe) -> str:
    return check_400([probe.read(raw_query="since=1&since=2"),
                             probe.read(raw_query="limit=1&limit=2")])


@rule("auth-enforced", "SHOULD", "without credentials, or with a wrong password, the source "
      "answers 401 with a JSON reason", POLICY, needs=())
def auth_enforced(probe: Probe) -> str:
    target = probe.target
    if not target.auth_configured:
        raise NotChecked("no credentials given (URL_USER, URL_PASSWORD)")
    wrong = []
    for name, transport in (("no credentials", target.anonymous),
                            ("a wrong password", target.wrong_password)):
        reply = transport(target.pull_path, {})
        try:
            json.loads(reply.body)
        except ValueError:
            wrong.append(f"{name}: {reply.status} without a JSON body")
            continue
        if reply.status != 401:
            wrong.append(f"{name}: HTTP {reply.status}")
    if wrong:
        raise Violation("; ".join(wrong))
    return "401 both ways"


WRITES_NEEDED = "needs this service's order API: give --allow-writes (it writes orders with " \
    "ids from 9,000,000,000)"


@rule("write-shows-up", "SHOULD", "an order written through the API comes next after the last "
      "offset, and nothing else does", POLICY,
      needs=WHOLE_READS)
def write_shows_up(probe: Probe) -> str:
    write = probe.target.write
    if write is None:
        raise NotChecked(WRITES_NEEDED)
    last = probe.pull()[-1]["_updated"]
    order_id = pick_id()
    status = write("PUT", f"/api/orders/{order_id}", order(order_id, "fresh"))
    read = probe.read(since=last)
    changed = read.require()
    if status not in (200, 201) or ids(changed) != [str(order_id)] or changed[0].get("Username") != "fresh":
        raise Violation(f"PUT /api/orders/{order_id} -> {status}; {read.request} returned "
                        f"{ids(changed)[:5]}")
    return f"PUT {order_id}, then {read.request}"


@rule("delete-is-tombstone", "SHOULD", "a deleted order comes as a tombstone (_deleted: true) "
      "after the last offset", POLICY,
      needs=WHOLE_READS)
def delete_is_tombstone(probe: Probe) -> str:
    write = probe.target.write
    if write is None:
        raise NotChecked(WRITES_NEEDED)
    order_id = pick_id()
    write("PUT", f"/api/orders/{order_id}", order(order_id, "doomed"))
    last = probe.pull()[-1]["_updated"]
    status = write("DELETE", f"/api/orders/{order_id}", None)
    read = probe.read(since=last)
    page = read.require()
    if status != 204 or len(page) != 1 or page[0].get("_id") != str(order_id) \
            or page[0].get("_deleted") is not True or not page[0]["_updated"] > last:
        raise Violation(f"DELETE /api/orders/{order_id} -> {status}; {read.request} returned "
                        f"{snippet(json.dumps(page), width=120)}")
    return f"DELETE {order_id}, then {read.request}"


def difference(got: list, expected: list) -> str:
    """Where two lists of entities part: the first position, and the ids missing or extra."""
    got_ids, expected_ids = ids(got), ids(expected)
    got_set, expected_set = set(got_ids), set(expected_ids)
    missing = [i for i in expected_ids if i not in got_set]
    extra = [i for i in got_ids if i not in expected_set]
    parts = [f"missing {missing[:4]}" if missing else "", f"extra {extra[:4]}" if extra else ""]
    if not missing and not extra:
        first = next((n for n, (a, b) in enumerate(zip(got, expected)) if a != b), None)
        parts.append(f"first difference at position {first}" if first is not None
                     else f"{len(got)} vs {len(expected)} entities")
    return ": " + ", ".join(p for p in parts if p)
