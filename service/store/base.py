"""The store's interface: what the web layer may ask of any backend.

A backend owns its SQL and its change tracking; the web layer only sees orders,
ready-made entity JSON text and the errors below.
"""
from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from collections.abc import Iterable, Iterator

if TYPE_CHECKING:  # receiver.py builds on this module
    from .receiver import Push, PushRequest, PushResult, SweepLimits
    from .verify import Verification


CHUNK_ROWS = 2000
FIRST_CHUNK_ROWS = 100  # read before the headers go out: small, for a quick first byte

# `_updated` values come from the clock: microseconds since the epoch, and at least one
# more than the previous value (schema_*.sql). A store created or restored later than
# another therefore never hands out a value that a pipe of the earlier one may hold.
# They stay below 2**53, so every JSON client reads them exactly (a double holds them);
# the databases refuse a value at or past it, which the clock reaches in the year 2255.
MAX_UPDATED = 2 ** 53 - 1
# After a restore, new values start this far past the clock. Values run ahead of the clock
# only while writes come faster than one per microsecond, and only by as much as such a
# burst wrote; a minute of lead is sixty million changes written in no time at all.
RESTORE_MARGIN_US = 60_000_000


@dataclass(frozen=True)
class Order:
    """One order, validated. `total_sum` is decimal text, kept exactly as given."""
    id: int
    username: str
    orders: str
    total_sum: str


@dataclass(frozen=True)
class StoreIdentity:
    """Who the store is, as the pull protocol's X-Dataset-* headers tell a pipe.

    `generation` is made when the schema is first created and never changes: a store
    created anew (a lost SQLite file, a dropped database) has another one. `restore_uuid`
    and `restore_offset` are set by `python -m service restored` after a backup was
    restored. `max_updated` is the highest `_updated` committed, in the snapshot the
    pull reads (None while the store has no changes at all)."""
    generation: str
    restore_uuid: str | None
    restore_offset: int | None
    max_updated: int | None


def new_uuid() -> str:
    """A store's generation, or a restore's id."""
    return str(uuid.uuid4())


class ChunkSource(Protocol):
    """A backend's side of one pull: its statements, all in one snapshot. What each read
    asks for, and when the pull is done, is ChangeStream's to decide."""

    def open(self, since: int, limit: int | None, rows: int,
             one_statement: bool) -> tuple[StoreIdentity, bytes, int]:
        """Read the store's identity and the first `rows` entities after `since` in one
        snapshot that later reads share (when `one_statement`, the whole pull fits this
        read, which needs no transaction then). Return the identity, the entities' JSON
        texts joined by commas, and how many there are."""

    def read(self, rows: int) -> tuple[bytes, int]:
        """The next `rows` entities at most, as `open` returns them."""

    def finish(self) -> None:
        """The pull has all it asked for (its limit is used up): let the statement end."""

    def close(self) -> None:
        """Release the snapshot and the connection; safe to call more than once."""


class ChangeStream:
    """An open read of the change log, in ascending `_updated` order: how a pull reads,
    whatever the backend. Opening it reads the store's identity and the first chunk, so a
    database error is raised before any response is started; a pull that fits the first
    read is one statement, and any longer one reads every chunk in the first one's snapshot."""

    exhausted = False  # every entity of the stream is read: the rest needs no database
    reached_end = False  # read to the end of its snapshot, not cut short by the limit
    _first: tuple[bytes, int] | None = None

    def __init__(self, source: ChunkSource, since: int, limit: int | None):
        self._source, self._left = source, limit  # _left: what the limit still allows
        size = self._next_size(FIRST_CHUNK_ROWS)
        try:
            self.identity, text, count = source.open(
                since, limit, size, one_statement=limit is not None and limit <= FIRST_CHUNK_ROWS)
            if since > (self.identity.max_updated or 0):
                # Handed out by another store (one lost or restored): say so, rather than
                # answer an empty page.
                raise SinceAhead(since, self.identity)
            self._first = self._counted(text, count, size)
        except BaseException:
            source.close()
            raise

    def chunks(self) -> Iterator[tuple[bytes, int]]:
        """Yield (entity JSON texts joined by commas, as UTF-8, how many); raise StoreError
        if the read breaks. No chunk is empty."""
        chunk, self._first = self._first, None
        while chunk is not None:
            yield chunk
            if self.exhausted:
                return
            size = self._next_size(CHUNK_ROWS)
            chunk = self._counted(*self._source.read(size), size)

    def close(self) -> None:
        self._source.close()

    def _next_size(self, rows: int) -> int:
        """How many entities the next read asks for: a chunk, or what the limit leaves."""
        return rows if self._left is None else min(rows, self._left)

    def _counted(self, text: bytes, count: int, size: int) -> tuple[bytes, int] | None:
        """Book a read of `count` entities out of `size` asked for: fewer means the
        snapshot holds no more; so does a limit used up."""
        if self._left is not None:
            self._left -= count
        self.reached_end = count < size
        self.exhausted = self.reached_end or self._left == 0
        if self.exhausted and not self.reached_end:
            self._source.finish()
        return (text, count) if count else None


class StoreError(Exception):
    """Base of the errors a store raises; the message is safe to show a client."""


class SchemaTooNew(StoreError):
    """The database's schema was made by a newer release that does not allow this code
    on it: the service must not start (and changes nothing)."""


def newer_schema_allows(found: int | None, oldest_code: int | None, code: int) -> bool:
    """Whether a database whose schema is `found` is one this code (made for schema
    `code`) serves as it is, without migrating: one made by a newer release that allows
    code as old as this. A schema this code knows, or an older one, it migrates up; a
    newer one that does not allow it is refused (SchemaTooNew), never migrated down."""
    if found is None or found <= code:
        return False
    if oldest_code is not None and oldest_code <= code:
        return True
    raise SchemaTooNew(
        f"the database's schema is version {found}, made by a newer release of the service, "
        f"which runs only code of schema version {oldest_code or found} and later; this code "
        f"is of version {code}. Nothing was changed: run the newer image (or restore the "
        "database from before the upgrade)")


class StoreUnavailable(StoreError):
    """The database cannot serve the request now (down, locked, read-only, full)."""


class StoreRejected(StoreError):
    """The database refused the data (a constraint); nothing was written."""


class SinceAhead(StoreError):
    """A pull's `since` is greater than the highest `_updated` this store has committed:
    the client's offset comes from another incarnation of the store."""

    def __init__(self, since: int, identity: StoreIdentity):
        self.since, self.identity = since, identity
        highest = "it holds no changes" if identity.max_updated is None \
            else f"its highest _updated is {identity.max_updated}"
        super().__init__(
            f"since={since} is ahead of this store ({highest}; generation "
            f"{identity.generation}): the offset comes from a store that was recreated or "
            "restored. Reset the pipe, which runs a full sync")


@dataclass(frozen=True)
class Restore:
    """What `record_restore` did: the new restore id, and the offsets around it."""
    restore_uuid: str
    restore_offset: int | None
    next_updated_above: int


class Store(Protocol):
    def migrate(self) -> None:
        """Create or upgrade the schema and the change tracking."""

    def load_if_empty(self, orders: Iterable[Order]) -> bool:
        """Load orders into a store that has never held any; say whether it did."""

    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""

    def open_changes(self, since: int, limit: int | None) -> ChangeStream:
        """Open a read of the changes after `since` (exclusive), at most `limit` of them;
        raise SinceAhead if `since` is past the highest `_updated` committed."""

    def record_restore(self, past: int = 0) -> Restore:
        """After a backup was restored: record a new restore id with the highest offset
        committed now, and move the change counter past the clock (and past `past`), so
        no value the lost timeline may have served is handed out again."""

    def get_order(self, order_id: int) -> str | None:
        """Return the live order as JSON text (the entity without `_id`/`_updated`), or None."""

    def upsert_orders(self, orders: list[Order]) -> tuple[int, int]:
        """Create or replace all orders in one transaction; return (created, updated)."""

    def delete_order(self, order_id: int) -> bool:
        """Delete a live order (leaving a tombstone); say whether there was one."""

    def bulk_load(self, orders: Iterable[Order], batch_size: int = 10_000) -> int:
        """Upsert a large stream of orders in batches; return how many were written."""

    def receive(self, request: PushRequest, pushes: list[Push],
                limits: SweepLimits = ...) -> PushResult:
        """Take one request of Sesam's JSON push protocol whole, or raise PushConflict
        or SweepRefused having written nothing (store/receiver.py)."""

    def protect(self, request: PushRequest, order_ids: list[int]) -> None:
        """Keep these orders from the open full sequence's sweep (a refused request)."""

    def receiver_status(self) -> dict:
        """The last full and incremental push sequences."""

    def note_delivered(self, max_updated: int) -> None:
        """A pull has delivered the feed up to `max_updated` in full."""

    def verify(self, repair: bool = True) -> Verification:
        """Compare the orders table with the feed; put the change tracking back and
        repair every difference by recording a fresh change (store/verify.py)."""

    def verify_if_due(self, interval_s: int) -> Verification | None:
        """Verify if no run started within `interval_s` on this database."""

    def verification_status(self) -> dict | None:
        """What the last periodic verification found."""

    def close(self) -> None:
        """Release every connection the store holds."""


class BatchedLoads:
    """The bulk load both backends share: one transaction per batch, each written by the
    backend's `_write_batch`, so memory stays flat however many orders come."""

    def _write_batch(self, batch: list[Order]) -> None:
        raise NotImplementedError

    def bulk_load(self, orders: Iterable[Order], batch_size: int = 10_000) -> int:
        written = 0
        iterator = iter(orders)
        while batch := list(itertools.islice(iterator, batch_size)):
            self._write_batch(batch)
            written += len(batch)
        return written
