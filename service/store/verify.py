"""The feed proves itself against the table: `python -m service verify`, and the service's
own run every VERIFY_INTERVAL_S seconds (store/README.md, "The feed verifies itself").

The feed is exactly as true as its triggers, and some writes go around them (a trigger
disabled or dropped, a replica session, a restore). A verification first puts the change
tracking back (each backend's `_assert_tracking`), so every write from then on is
recorded, then compares the orders table with the feed's live entities in chunks of ids:
- missing: an order with no change, or a tombstone, in the feed;
- stale: an order whose live entity says something else;
- orphaned: a live entity whose order the table no longer holds.
Each difference is repaired by recording a fresh change (the order's entity, or a
tombstone) with a new `_updated`, so a pipe receives it on its next incremental run.
Each chunk is compared and repaired in one transaction that holds the lock writers take
to record their changes: a write during verification is neither lost nor reported.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

log = logging.getLogger("service")
T = TypeVar("T")
# Ids per chunk, each compared in one transaction holding the writers' lock: about 45 ms
# on the 2-core machine (some 0.2 s at a quarter core) that a write may wait. Chunks of
# 10,000 cost 10-20% more CPU per million orders, in per-chunk work.
CHUNK_IDS = 50_000
EXAMPLES = 5  # ids named per kind of difference, in the log and /health
TOMBSTONE_END = '"_deleted":true}'

LAST_ID = 2**63 - 1  # the largest id either table can hold (a bigint; SQLite's INTEGER)

# A chunk holds at most CHUNK_IDS changes and at most CHUNK_IDS orders (both are bounded:
# 10 million orphaned changes may lie between two orders, or 10 million orders have no
# change). First the last of the next changes, and how many there are; then the orders up
# to it (or to LAST_ID, when those were the last changes), the last of them and how many.
NEXT_CHANGES_BOUND = ("SELECT max(order_id), count(*) FROM (SELECT order_id FROM changes "
                      "WHERE order_id > ? ORDER BY order_id LIMIT ?) AS chunk")
NEXT_ORDERS_BOUND = ("SELECT max(id), count(*) FROM (SELECT id FROM orders WHERE id > ? "
                     "AND id <= ? ORDER BY id LIMIT ?) AS chunk")
# A live change keeps the values its entity was made from, a tombstone NULLs (so does a
# change older than that, which the comparison then finds differing, and repairs).
LIVE = f"(c.username IS NOT NULL OR substr(c.entity, length(c.entity) - 15) <> '{TOMBSTONE_END}')"
# The values are compared, not the entity: building every order's JSON again cost three
# times as much (store/README.md).
VALUES_DIFFER = """(c.username IS DISTINCT FROM o.username OR c.orders IS DISTINCT FROM o.orders
    OR c.total_sum IS DISTINCT FROM CAST(o.total_sum AS TEXT))"""
VALUES_DIFFER_SQLITE = VALUES_DIFFER.replace("IS DISTINCT FROM", "IS NOT")  # its spelling
# Each comparison below gives, for the ids in (?, ?], one row per difference: the id,
# whether it is an orphaned live change (no order), and whether the feed lacks the order
# (no change, or a tombstone); an order with neither is stale. The range is given to each
# side of a join: PostgreSQL does not carry it across an outer join, and would read the
# whole other table for every chunk.
#
# PostgreSQL: one merge full join of the two ranges, a third cheaper than the two joins below
# (store/README.md).
CHUNK_DIFFS_FULL_JOIN = f"""SELECT coalesce(o.id, c.order_id), o.id IS NULL, c.entity IS NULL OR NOT {LIVE}
    FROM (SELECT id, username, orders, total_sum FROM orders WHERE id > ? AND id <= ?) AS o
    FULL JOIN (SELECT order_id, entity, username, orders, total_sum FROM changes
               WHERE order_id > ? AND order_id <= ?) AS c ON c.order_id = o.id
    WHERE (o.id IS NULL AND {LIVE}) OR (o.id IS NOT NULL AND {VALUES_DIFFER})"""
# SQLite runs a full join as a left join and then a scan of the whole right table: the
# orders' differences, and then the orphans (a join with the order's absence tested first:
# a third cheaper than NOT EXISTS). Each takes the range twice.
CHUNK_DIFFS_TWO_JOINS = f"""SELECT o.id, 0, c.entity IS NULL OR NOT {LIVE}
    FROM orders o LEFT JOIN changes c ON c.order_id = o.id AND c.order_id > ? AND c.order_id <= ?
    WHERE o.id > ? AND o.id <= ? AND {VALUES_DIFFER_SQLITE}
UNION ALL
SELECT c.order_id, 1, 0 FROM changes c
    LEFT JOIN orders o ON o.id = c.order_id AND o.id > ? AND o.id <= ?
    WHERE c.order_id > ? AND c.order_id <= ? AND o.id IS NULL AND {LIVE}"""


class VerifyTx(Protocol):
    """One transaction holding the writers' change lock; `?` placeholders."""

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        ...

    def differences(self, low: int, high: int) -> list[tuple[int, bool, bool]]:
        """The differences of the ids in (low, high]: id, orphaned, lacking (as above)."""

    def record_live(self, order_ids: list[int]) -> None:
        """Record a fresh change with each order's entity as the table holds it."""

    def record_tombstones(self, order_ids: list[int]) -> None:
        """Record a fresh tombstone for each order id."""


@dataclass
class Verification:
    """What a verification found (and, unless a dry run, repaired)."""
    orders: int = 0
    missing: int = 0
    stale: int = 0
    orphaned: int = 0
    examples: dict[str, list[int]] = field(default_factory=dict)
    tracking: list[str] = field(default_factory=list)  # what was wrong with it (put back first)
    repaired: bool = False
    started: float = 0.0
    seconds: float = 0.0

    @property
    def differences(self) -> int:
        return self.missing + self.stale + self.orphaned

    def add(self, kind: str, order_ids: list[int]) -> None:
        setattr(self, kind, getattr(self, kind) + len(order_ids))
        shown = self.examples.setdefault(kind, [])
        shown.extend(order_ids[:EXAMPLES - len(shown)])

    def summary(self) -> dict[str, Any]:
        summary = asdict(self)
        summary["started"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started))
        summary["seconds"] = round(self.seconds, 3)
        return summary


class Verifier:
    """The verification, on top of a backend's locked transactions."""

    def _verifying(self, work: Callable[[VerifyTx], T]) -> T:
        """Run `work` in one transaction that holds the lock writers of changes take."""
        raise NotImplementedError

    def _assert_tracking(self, fix: bool = True) -> list[str]:
        """Put the change tracking back where it is not as the schema made it (triggers
        dropped, disabled, or not firing in every replication role); say what was wrong."""
        raise NotImplementedError

    def verify(self, repair: bool = True, chunk: int = CHUNK_IDS) -> Verification:
        """Compare the table with the feed; put the tracking back and repair every
        difference, unless `repair` is false (a dry run only reports)."""
        result = Verification(repaired=repair, started=time.time())
        result.tracking = self._assert_tracking(fix=repair)
        started = time.perf_counter()
        low: int | None = 0
        while low is not None:
            low = self._verifying(partial(_chunk, low, chunk, result, repair))
        result.seconds = time.perf_counter() - started
        return result

    def verify_if_due(self, interval_s: int) -> Verification | None:
        """The periodic run: claim the run if none started within `interval_s` (across
        every worker and instance on this database), verify, record what was found."""
        now_us = int(time.time() * 1_000_000)
        claimed = self._verifying(lambda tx: tx.rows(
            "UPDATE verifications SET started_us = ? WHERE started_us <= ? RETURNING 1",
            (now_us, now_us - interval_s * 1_000_000)))
        if not claimed:
            return None
        result = self.verify()
        text = json.dumps(result.summary())
        self._verifying(lambda tx: tx.rows("UPDATE verifications SET result = ? RETURNING 1", (text,)))
        report(result)
        return result

    def verification_status(self) -> dict[str, Any] | None:
        """What the last periodic verification found, for /health."""
        rows = self._verifying_read(lambda tx: tx.rows("SELECT result FROM verifications"))
        return json.loads(rows[0][0]) if rows and rows[0][0] else None

    def _verifying_read(self, work: Callable[[VerifyTx], T]) -> T:
        raise NotImplementedError


def report(result: Verification) -> None:
    """One log line: WARNING with counts and example ids when the feed was not true."""
    if result.differences or result.tracking:
        log.warning("verification: the feed differed from the orders table"
                    + (" (repaired)" if result.repaired else " (dry run: not repaired)"),
                    extra={"verification": result.summary()})
    else:
        log.info("verification: the feed agrees with the orders table",
                 extra={"orders": result.orders, "seconds": round(result.seconds, 3)})


def _chunk(low: int, size: int, result: Verification, repair: bool, tx: VerifyTx) -> int | None:
    """Compare (and repair) the next chunk of ids after `low`; return its last id, None
    when there are no more."""
    changes_high, changes = tx.rows(NEXT_CHANGES_BOUND, (low, size))[0]
    cap = changes_high if changes == size else LAST_ID
    orders_high, orders = tx.rows(NEXT_ORDERS_BOUND, (low, cap, size))[0]
    if not changes and not orders:
        return None
    high = orders_high if orders == size else cap
    result.orders += orders
    _compare(tx, low, high, result, repair)
    return None if high == LAST_ID else high


def _compare(tx: VerifyTx, low: int, high: int, result: Verification, repair: bool) -> None:
    diffs = sorted(tx.differences(low, high))  # by id: examples and repairs in id order
    orphaned = [order_id for order_id, orphan, _ in diffs if orphan]
    missing = [order_id for order_id, orphan, lacking in diffs if lacking and not orphan]
    stale = [order_id for order_id, orphan, lacking in diffs if not (lacking or orphan)]
    for kind, order_ids in (("missing", missing), ("stale", stale), ("orphaned", orphaned)):
        result.add(kind, order_ids)
    if repair and (missing or stale):
        tx.record_live([order_id for order_id, orphan, _ in diffs if not orphan])
    if repair and orphaned:
        tx.record_tombstones(orphaned)
