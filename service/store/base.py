"""The store's interface: what the web layer may ask of any backend.

A backend owns its SQL and its change tracking; the web layer only sees orders,
ready-made entity JSON text and the errors below.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterable, Iterator, Protocol, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Order:
    """One order, validated. `total_sum` is decimal text, kept exactly as given."""
    id: int
    username: str
    orders: str
    total_sum: str


class ChunkedReads:
    """The reading loop both backends' streams share. A stream reads its first chunk when
    it opens; `_read()` reads the next one (database errors already translated) and sets
    `exhausted` once the database holds nothing more for the stream."""

    exhausted = False
    _first: tuple[bytes, int] | None = None

    def _read(self) -> tuple[bytes, int] | None:
        raise NotImplementedError

    def chunks(self) -> Iterator[tuple[bytes, int]]:
        chunk, self._first = self._first, None
        while chunk is not None:
            yield chunk
            if self.exhausted:
                return
            chunk = self._read()


class StoreError(Exception):
    """Base of the errors a store raises; the message is safe to show a client."""


class StoreUnavailable(StoreError):
    """The database cannot serve the request now (down, locked, read-only, full)."""


class StoreRejected(StoreError):
    """The database refused the data (a constraint); nothing was written."""


class ChangeStream(Protocol):
    """An open read of the change log, in ascending `_updated` order. Opening it reads
    the first chunk, so a database error is raised before any response is started."""

    def chunks(self) -> Iterator[tuple[bytes, int]]:
        """Yield (entity JSON texts joined by commas, as UTF-8, how many); raise StoreError if the
        read breaks. Entities come in ascending `_updated` order; no chunk is empty."""

    @property
    def exhausted(self) -> bool:
        """Whether every entity of the stream has been read from the database already,
        so the rest of `chunks()` needs neither the database nor the connection."""

    def close(self) -> None:
        """Release the cursor and connection; safe to call more than once."""


class Store(Protocol):
    def migrate(self) -> None:
        """Create or upgrade the schema and the change tracking."""

    def load_if_empty(self, orders: Iterable[Order]) -> bool:
        """Load orders into a store that has never held any; say whether it did."""

    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""

    def open_changes(self, since: int, limit: int | None) -> ChangeStream:
        """Open a read of the changes after `since` (exclusive), at most `limit` of them."""

    def get_order(self, order_id: int) -> str | None:
        """Return the live order as JSON text (the entity without `_id`/`_updated`), or None."""

    def upsert_orders(self, orders: list[Order]) -> tuple[int, int]:
        """Create or replace all orders in one transaction; return (created, updated)."""

    def delete_order(self, order_id: int) -> bool:
        """Delete a live order (leaving a tombstone); say whether there was one."""

    def bulk_load(self, orders: Iterable[Order], batch_size: int = 10_000) -> int:
        """Upsert a large stream of orders in batches; return how many were written."""

    def close(self) -> None:
        """Release every connection the store holds."""


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Split items into lists of at most `size`: one transaction each in a bulk load."""
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch
