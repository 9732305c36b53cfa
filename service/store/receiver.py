"""Sesam's JSON push protocol, as the store takes it: sequences, the 409 rules, which
pushed orders are written, and the sweep that ends a full sync. Written once for both
backends: each gives a transaction (`ReceiverTx`) that speaks the SQL below, which both
databases read alike. The rules and why: store/README.md, "Sesam writes orders".
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from .base import Order, StoreError

log = logging.getLogger("service")

# A full sequence that has taken no request for this long is abandoned: Sesam sends a
# sequence's requests back to back, and its own read timeout is 30 minutes a request.
ABANDON_AFTER_S = 3600
FULL, INCREMENTAL = "full", "incremental"
T = TypeVar("T")

# `{ids}` is the backend's ID_LIST: a query of the ids passed as its one parameter.
CURRENT_SQL = """SELECT o.id, o.username, o.orders, CAST(o.total_sum AS TEXT), c.seq, p.seq FROM orders o
    LEFT JOIN changes c ON c.order_id = o.id LEFT JOIN pushed_versions p ON p.order_id = o.id
    WHERE o.id IN ({ids})"""
# The orders Sesam no longer holds: live, not sent by the sequence, and in a version Sesam
# had seen when the sequence began (delivered by then, or written by the receiver).
SWEEP_SELECT = """SELECT o.id FROM orders o JOIN changes c ON c.order_id = o.id
    LEFT JOIN pushed_versions p ON p.order_id = o.id
    WHERE (c.seq <= ? OR c.seq = p.seq) AND c.seq <= ?
    AND NOT EXISTS (SELECT 1 FROM push_seen s WHERE s.order_id = o.id)"""
RECORD_PUSHED_SQL = """INSERT INTO pushed_versions (order_id, seq)
    SELECT order_id, seq FROM changes WHERE order_id IN ({ids})
    ON CONFLICT (order_id) DO UPDATE SET seq = excluded.seq"""
DELETE_SQL = "DELETE FROM orders WHERE id IN ({ids})"
# (WHERE true: SQLite would read ON CONFLICT as a join's ON.)
MARK_SEEN_SQL = "INSERT INTO push_seen (order_id) SELECT * FROM ({ids}) AS ids WHERE true ON CONFLICT DO NOTHING"
SAVE_STATE_SQL = """INSERT INTO push_state (kind, state) VALUES (?, ?)
    ON CONFLICT (kind) DO UPDATE SET state = excluded.state"""


class PushConflict(StoreError):
    """A request out of its sequence (the protocol's 409): nothing was written, and the
    sink starts a new sequence."""


class SweepRefused(StoreError):
    """The end of a full sync would delete too much (or the sync sent nothing): the last
    request is refused whole and nothing is deleted; the message says what to do."""


@dataclass(frozen=True)
class PushRequest:
    """A push request's query parameters (docs.sesam.io, JSON Push Protocol)."""
    sequence_id: str
    request_id: str
    previous_request_id: str | None = None
    is_full: bool = False
    is_first: bool = False
    is_last: bool = False


@dataclass(frozen=True)
class Push:
    """One pushed entity, as the store takes it: an order to write, or (order None) a
    delete; `replaced` entities were merged into another in Sesam and are left alone."""
    order_id: int
    order: Order | None
    replaced: bool = False


@dataclass(frozen=True)
class SweepLimits:
    """What the operator allows the end of a full sync to delete."""
    max_delete_share: float = 0.5
    allow_empty: bool = False


@dataclass
class Counts:
    written: int = 0    # created or changed
    deleted: int = 0    # by `_deleted: true`
    unchanged: int = 0  # equal to what the store holds: no change recorded
    kept_newer: int = 0  # the store's version is newer than Sesam has seen: kept
    ignored: int = 0    # `$replaced`

    def add(self, other: Counts) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass
class SequenceState:
    """A push sequence as the database keeps it (push_state, as JSON)."""
    sequence_id: str
    last_request_id: str
    began: float
    last_request: float
    bound: int = 0  # full: the feed as Sesam had seen it when the sequence began
    began_seq: int = 0  # full: the highest `_updated` when the sequence began
    status: str = "open"  # open, ended, refused, abandoned
    requests: int = 0
    entities: int = 0
    counts: Counts = field(default_factory=Counts)
    swept: int = 0
    ended: float | None = None
    reason: str | None = None

    @classmethod
    def from_json(cls, text: str) -> SequenceState:
        data = json.loads(text)
        return cls(**{**data, "counts": Counts(**data["counts"])})

    def to_json(self) -> str:
        return json.dumps(asdict(self))


@dataclass(frozen=True)
class PushResult:
    counts: Counts
    repeat: bool = False
    swept: int | None = None

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {**asdict(self.counts), "repeat": self.repeat}
        if self.swept is not None:
            result["swept"] = self.swept
        return result


class ReceiverTx(Protocol):
    """One write transaction, with the receiver's lock held; `?` placeholders."""

    ID_LIST: str  # a query of the ids given as one parameter (see `id_list`)

    def id_list(self, ids: list[int]) -> Any:
        """The one parameter that ID_LIST reads the ids from."""

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        ...

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Execute a statement whose result is not read: a backend may send it with what
        follows (PostgreSQL pipelines a request's statements: a round trip where a read
        needs its answer, and one at the end)."""

    def count(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute; return the rows it changed (a round trip of its own)."""

    def upsert(self, orders: list[Order]) -> None:
        """Write the orders (their result is not read, as with `run`)."""


class Receiver:
    """The push protocol, on top of a backend's receiver transactions."""

    _delivered_noted = 0  # the highest mark this process has recorded

    def _receiving(self, work: Callable[[ReceiverTx], T]) -> T:
        """Run `work` in one write transaction that holds the receiver's lock (so
        requests of one sequence are taken one at a time, across instances); all or
        nothing, and run again if the database aborted it to break a deadlock."""
        raise NotImplementedError

    def _reading(self, work: Callable[[ReceiverTx], T]) -> T:
        """Run `work` on a plain read, with no lock: /health must not wait for a sweep."""
        raise NotImplementedError

    def receive(self, request: PushRequest, pushes: list[Push],
                limits: SweepLimits = SweepLimits()) -> PushResult:
        """Take one push request whole, or raise PushConflict / SweepRefused having
        written nothing."""
        try:
            return self._receiving(lambda tx: _receive(tx, request, pushes, limits))
        except SweepRefused as refusal:
            reason = str(refusal)
            self._receiving(lambda tx: _end_refused(tx, request, reason))
            log.warning("full sync refused: %s", reason, extra={"sequence_id": request.sequence_id})
            raise

    def protect(self, request: PushRequest, order_ids: list[int]) -> None:
        """A full sequence's request was refused for a bad entity: Sesam goes on with
        the rest (retrying one entity at a time, dead-lettering what fails), so the
        orders it named must not be swept as unsent."""
        def work(tx: ReceiverTx) -> None:
            state = _states(tx).get(FULL)
            if order_ids and state and state.status == "open" \
                    and state.sequence_id == request.sequence_id:
                _mark_seen(tx, order_ids)
        self._receiving(work)

    def receiver_status(self) -> dict[str, Any]:
        """The last full and incremental sequences, for /health."""
        states = self._reading(_states)
        return {kind: _summary(state) for kind, state in states.items()}

    def note_delivered(self, max_updated: int) -> None:
        """A pull has delivered the feed up to `max_updated` in full. A write only when
        the mark moves: incremental pulls with nothing new cost nothing."""
        if max_updated > self._delivered_noted:
            self._note_delivered(max_updated)
            self._delivered_noted = max_updated

    def _note_delivered(self, max_updated: int) -> None:
        raise NotImplementedError


def _receive(tx: ReceiverTx, request: PushRequest, pushes: list[Push],
             limits: SweepLimits) -> PushResult:
    states, mark = _states_and_mark(tx)
    now = time.time()
    full = _abandon_stale(tx, states.get(FULL), now)
    verdict = check_sequence(request, full, states.get(INCREMENTAL))
    if verdict == "repeat":
        return PushResult(Counts(), repeat=True)
    if verdict == "new":
        if full is not None and full.status == "open":
            log.warning("full sync replaced by a new one before it ended: it deleted nothing",
                        extra={"sequence_id": full.sequence_id})
        tx.run("DELETE FROM push_seen")
        began_seq = tx.rows("SELECT coalesce(max(seq), 0) FROM changes")[0][0]
        full = SequenceState(request.sequence_id, request.request_id, now, now, bound=mark,
                             began_seq=began_seq)
    counts = _apply(tx, pushes, mark)
    kind = FULL if request.is_full else INCREMENTAL
    state = full if request.is_full else states.get(INCREMENTAL)
    if state is None or state.sequence_id != request.sequence_id:
        state = SequenceState(request.sequence_id, request.request_id, now, now)
    state.last_request_id, state.last_request = request.request_id, now
    state.requests += 1
    state.entities += len(pushes)
    state.counts.add(counts)
    swept = None
    if request.is_full and request.is_last:
        _mark_seen(tx, [push.order_id for push in pushes])
        swept = _sweep(tx, state, limits)
        state.status, state.ended, state.swept = "ended", now, swept
        tx.run("DELETE FROM push_seen")
        log.info("full sync ended", extra={"sequence_id": state.sequence_id, **_summary(state)})
    if request.is_full and not request.is_last:
        _mark_seen(tx, [push.order_id for push in pushes])
    tx.run(SAVE_STATE_SQL, (kind, state.to_json()))
    return PushResult(counts, swept=swept)


def check_sequence(request: PushRequest, full: SequenceState | None,
                   incremental: SequenceState | None) -> str:
    """The protocol's order rules: "repeat" (the last request taken, again), "new" (a
    full sequence begins), "next"; or raise PushConflict."""
    same_full = full is not None and full.sequence_id == request.sequence_id
    same_incremental = incremental is not None and incremental.sequence_id == request.sequence_id
    if not request.is_full:
        if same_full:
            raise PushConflict(f"sequence {request.sequence_id} is a full sync: is_full "
                               "must not change within a sequence")
        if same_incremental and request.request_id == incremental.last_request_id:  # type: ignore[union-attr]
            return "repeat"
        return "next"
    if same_incremental:
        raise PushConflict(f"sequence {request.sequence_id} is incremental: is_full must "
                           "not change within a sequence")
    if not same_full:
        if not request.is_first:
            raise PushConflict(f"sequence {request.sequence_id} is unknown (a full sync "
                               "starts with is_first=true): start a new sequence")
        return "new"
    assert full is not None
    if request.request_id == full.last_request_id:
        return "repeat"
    if full.status != "open":
        raise PushConflict(f"sequence {full.sequence_id} has {full.status}: start a new one")
    if request.is_first:
        raise PushConflict(f"is_first on a request that is not the first of sequence "
                           f"{full.sequence_id}")
    if request.previous_request_id != full.last_request_id:
        raise PushConflict(f"previous_request_id {request.previous_request_id!r} is not the "
                           f"last request taken in sequence {full.sequence_id} "
                           f"({full.last_request_id!r})")
    return "next"


def _apply(tx: ReceiverTx, pushes: list[Push], mark: int) -> Counts:
    """Write what differs from the store, unless the store's version is one Sesam has
    not seen (written after the feed last delivered it, and not by the receiver)."""
    counts = Counts()
    ids = [push.order_id for push in pushes]
    current = {row[0]: row for row in _with_ids(tx, tx.rows, CURRENT_SQL, ids)} if ids else {}
    upserts: list[Order] = []
    deletes: list[int] = []
    for push in pushes:
        row = current.get(push.order_id)
        if push.replaced:
            counts.ignored += 1
        elif row is None and push.order is None:
            counts.unchanged += 1  # deleted already
        elif row is not None and push.order is not None and _same(row, push.order):
            counts.unchanged += 1
        elif row is not None and not _seen_by_sesam(row, mark):
            counts.kept_newer += 1
        elif push.order is None:
            deletes.append(push.order_id)
        else:
            upserts.append(push.order)
    counts.written, counts.deleted = len(upserts), len(deletes)
    if upserts:
        tx.upsert(upserts)
    if deletes:
        _with_ids(tx, tx.run, DELETE_SQL, deletes)
    if upserts:
        _with_ids(tx, tx.run, RECORD_PUSHED_SQL, [order.id for order in upserts])
    return counts


def _with_ids(tx: ReceiverTx, call: Callable[[str, Sequence[Any]], T], sql: str, ids: list[int]) -> T:
    return call(sql.format(ids=tx.ID_LIST), (tx.id_list(ids),))


def _same(row: tuple, order: Order) -> bool:
    """Equal values: a TotalSum of 12.1 is the stored 12.10 (which then stays). The same
    text, the usual case, needs no Decimal."""
    return (row[1], row[2]) == (order.username, order.orders) \
        and (row[3] == order.total_sum or Decimal(row[3]) == Decimal(order.total_sum))


def _seen_by_sesam(row: tuple, mark: int) -> bool:
    seq, pushed_seq = row[4], row[5]
    return seq is None or seq <= mark or seq == pushed_seq


def _sweep(tx: ReceiverTx, state: SequenceState, limits: SweepLimits) -> int:
    """Delete the orders the full sequence did not send, as far as the limits allow."""
    bounds = (state.bound, state.began_seq)
    doomed = tx.rows(f"SELECT count(*) FROM ({SWEEP_SELECT}) AS doomed", bounds)[0][0]
    live = tx.rows("SELECT count(*) FROM orders")[0][0]
    if state.entities == 0 and live and not limits.allow_empty:
        raise SweepRefused(
            f"full sync {state.sequence_id} sent no entity while the store holds {live} "
            "orders: nothing was deleted (an empty or broken upstream must not empty the "
            "store; RECEIVER_ALLOW_EMPTY_FULL_SYNC=true allows it)")
    if doomed and doomed > limits.max_delete_share * live:
        raise SweepRefused(
            f"full sync {state.sequence_id} would delete {doomed} of {live} orders, more "
            f"than RECEIVER_MAX_DELETE_SHARE={limits.max_delete_share:g} allows: nothing "
            "was deleted (raise it to allow this sync)")
    if not doomed:
        return 0
    return tx.count(f"DELETE FROM orders WHERE id IN ({SWEEP_SELECT})", bounds)


def _end_refused(tx: ReceiverTx, request: PushRequest, message: str) -> None:
    state = _states(tx).get(FULL)
    if state is None or state.sequence_id != request.sequence_id:  # refused at its first request
        now = time.time()
        state = SequenceState(request.sequence_id, last_request_id="", began=now, last_request=now)
    state.status, state.ended, state.reason = "refused", time.time(), message
    tx.run("DELETE FROM push_seen")
    tx.run(SAVE_STATE_SQL, (FULL, state.to_json()))


def _abandon_stale(tx: ReceiverTx, full: SequenceState | None, now: float) -> SequenceState | None:
    """An open full sequence that went quiet deletes nothing and leaves nothing behind."""
    if full is None or full.status != "open" or now - full.last_request < ABANDON_AFTER_S:
        return full
    full = replace(full, status="abandoned", ended=now,
                   reason=f"no request for {ABANDON_AFTER_S} s: nothing was deleted")
    tx.run("DELETE FROM push_seen")
    tx.run(SAVE_STATE_SQL, (FULL, full.to_json()))
    log.warning("full sync abandoned", extra={"sequence_id": full.sequence_id})
    return full


def _mark_seen(tx: ReceiverTx, order_ids: list[int]) -> None:
    if order_ids:
        _with_ids(tx, tx.run, MARK_SEEN_SQL, sorted(set(order_ids)))


def _states(tx: ReceiverTx) -> dict[str, SequenceState]:
    return _states_and_mark(tx)[0]


def _states_and_mark(tx: ReceiverTx) -> tuple[dict[str, SequenceState], int]:
    """The sequences' states and how far the feed was delivered, in one round trip."""
    rows = tx.rows("SELECT '', CAST(max_updated AS TEXT) FROM feed_delivered "
                   "UNION ALL SELECT kind, state FROM push_state")
    mark = next(int(text) for kind, text in rows if kind == "")
    return {kind: SequenceState.from_json(text) for kind, text in rows if kind}, mark


def _summary(state: SequenceState) -> dict[str, Any]:
    summary = asdict(state)
    for name in ("began", "last_request", "ended"):
        if summary[name] is not None:
            summary[name] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(summary[name]))
    for name in ("bound", "began_seq"):
        summary.pop(name)
    return summary
