"""Parse the pull protocol's query parameters: junk is an error, never "absent"."""
from __future__ import annotations

import re
from dataclasses import dataclass
from collections.abc import Mapping, Sequence

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
