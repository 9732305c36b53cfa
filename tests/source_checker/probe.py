"""Reading a source for the checker: every GET is kept with what it returned, so a rule
can quote the request and the bytes as its evidence."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests.sesam_emulator import Reply, RunFailed, with_params
from tests.support.targets import Target
import itertools


class NotChecked(Exception):
    """The rule cannot be checked on this source; the message says why."""


class Violation(Exception):
    """The source breaks the rule; the message is the evidence."""


@dataclass
class Read:
    """One GET: the request, what came back, and the body as a list when it is a JSON array."""
    request: str
    status: int | None
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    entities: list | None = None
    problem: str = ""  # why `entities` is None

    def require(self) -> list:
        """The array, or a Violation that quotes the request and the body."""
        if self.entities is None:
            raise Violation(f"{self.request} -> {self.problem}")
        return self.entities


def snippet(data: bytes | str, start: int = 0, width: int = 160) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    start = max(0, start - width // 4)
    piece = text[start:start + width]
    return ("..." if start else "") + repr(piece)[1:-1] + ("..." if start + width < len(text) else "")


def parse(status: int | None, body: bytes) -> tuple[list | None, str]:
    """The body as a JSON array, or None and why not (with the offending bytes)."""
    if status != 200:
        return None, f"HTTP {status}: {snippet(body)}"
    try:
        value = json.loads(body)
    except ValueError as error:
        position = getattr(error, "pos", 0)
        return None, f"not JSON ({error}): {snippet(body.decode('utf-8', 'replace'), position)}"
    if not isinstance(value, list):
        return None, f"JSON but not an array: {snippet(body)}"
    return value, ""


class Probe:
    """The source under check, its first full read, and every read made since."""

    def __init__(self, target: Target, repeat: int = 3):
        self.target = target
        self.reads: list[Read] = []
        self.first = self.read()
        self.repeats = [self.first] + [self.read() for _ in range(repeat - 1)]

    def read(self, raw_query: str = "", **params: Any) -> Read:
        path = self.target.pull_path
        if raw_query:  # sent as it is, e.g. a repeated parameter
            path += ("&" if "?" in path else "?") + raw_query
        shown = "GET " + with_params(path, params)
        try:
            reply: Reply = self.target.transport(path, params)
        except RunFailed as error:
            read = Read(shown, None, error.partial, problem=f"no complete reply: {error}")
        else:
            entities, problem = parse(reply.status, reply.body)
            read = Read(shown, reply.status, reply.body, reply.headers, entities, problem)
        self.reads.append(read)
        return read

    def pull(self, **params: Any) -> list:
        return self.read(**params).require()

    def full(self) -> list[dict]:
        """The first full read, when it is an array of entities with `_updated` of one type."""
        entities = self.first.entities
        if entities is None:
            raise NotChecked("the full read is not a JSON array (see json-array)")
        if not entities:
            raise NotChecked("the source serves no entities")
        if not all(isinstance(e, dict) and "_updated" in e for e in entities):
            raise NotChecked("not every element is an entity with _updated (see updated-valid)")
        if len({updated_kind(e["_updated"]) for e in entities}) != 1 \
                or updated_kind(entities[0]["_updated"]) is None:
            raise NotChecked("_updated is not of one type, string or integer (see updated-valid)")
        return entities

    def sorted_full(self) -> list[dict]:
        entities = self.full()
        if not is_ascending(entities):
            raise NotChecked("the full read is not in ascending _updated order (see ascending-updated)")
        return entities


def updated_kind(value: Any) -> type | None:
    """int or str, the two kinds of `_updated` Sesam accepts (a bool is not an int here)."""
    if isinstance(value, bool):
        return None
    return type(value) if isinstance(value, (int, str)) else None


def is_ascending(entities: list[dict]) -> bool:
    return all(a["_updated"] <= b["_updated"] for a, b in itertools.pairwise(entities))


def ids(entities: list) -> list:
    return [e.get("_id") if isinstance(e, dict) else e for e in entities]
