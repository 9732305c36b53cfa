"""Parse the pull protocol's query parameters: junk is an error, never "absent"."""
from __future__ import annotations

import re
from dataclasses import dataclass
from collections.abc import Mapping, Sequence

from .store.receiver import PushRequest

MAX_INT64 = 2 ** 63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")  # ASCII only: int() would also take '١٢', ' 7', '+7', '7_0'


class BadParameter(ValueError):
    """A query parameter is malformed; the message names it and says why."""


@dataclass(frozen=True)
class PullParams:
    since: int
    limit: int | None


def parse_pull_params(args: Mapping[str, Sequence[str]]) -> PullParams:
    """Return `since` (0 when absent) and `limit` (None when absent) from all query values."""
    since = _one_int(args, "since", minimum=0)
    limit = _one_int(args, "limit", minimum=1)
    return PullParams(since=0 if since is None else since, limit=limit)


def _one_int(args: Mapping[str, Sequence[str]], name: str, minimum: int) -> int | None:
    values = args.get(name) or []
    if not values:
        return None
    if len(values) > 1:
        raise BadParameter(f"'{name}' is given {len(values)} times; give it once")
    raw = values[0]
    if not _DIGITS.fullmatch(raw):
        raise BadParameter(f"'{name}' must be a whole number from {minimum} to {MAX_INT64}, "
                           f"got {raw[:40]!r}")
    value = int(raw)
    if not minimum <= value <= MAX_INT64:
        raise BadParameter(f"'{name}' must be a whole number from {minimum} to {MAX_INT64}, "
                           f"got {raw!r}")
    return value


_TOKEN = re.compile(r"[\x21-\x7e]{1,200}")  # a sequence or request id: printable ASCII
_BOOLEANS = {"true": True, "false": False}


def parse_push_params(args: Mapping[str, Sequence[str]]) -> PushRequest:
    """The JSON push protocol's parameters: `sequence_id` and `request_id` always,
    `previous_request_id` on every request but a sequence's first, and `is_full`, with
    `is_first` and `is_last` only in a full sync."""
    is_full = _one_bool(args, "is_full")
    is_first, is_last = _one_bool(args, "is_first"), _one_bool(args, "is_last")
    if (is_first or is_last) and not is_full:
        raise BadParameter("'is_first' and 'is_last' belong to a full sync: give is_full=true")
    sequence_id, request_id = _one_token(args, "sequence_id"), _one_token(args, "request_id")
    if sequence_id is None or request_id is None:
        raise BadParameter("'sequence_id' and 'request_id' are required (Sesam's JSON push protocol)")
    return PushRequest(sequence_id=sequence_id, request_id=request_id,
                       previous_request_id=_one_token(args, "previous_request_id"),
                       is_full=is_full, is_first=is_first, is_last=is_last)


def _one(args: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = args.get(name) or []
    if len(values) > 1:
        raise BadParameter(f"'{name}' is given {len(values)} times; give it once")
    return values[0] if values else None


def _one_token(args: Mapping[str, Sequence[str]], name: str) -> str | None:
    raw = _one(args, name)
    if raw is not None and not _TOKEN.fullmatch(raw):
        raise BadParameter(f"'{name}' must be 1 to 200 printable ASCII characters, got {raw[:40]!r}")
    return raw


def _one_bool(args: Mapping[str, Sequence[str]], name: str) -> bool:
    raw = _one(args, name)
    if raw is None:
        return False
    if raw.lower() not in _BOOLEANS:
        raise BadParameter(f"'{name}' must be true or false, got {raw[:40]!r}")
    return _BOOLEANS[raw.lower()]
