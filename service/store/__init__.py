"""Pick the store backend from DATABASE_URL."""
from __future__ import annotations

from .base import (ChangeStream, Order, Restore, SchemaTooNew, SinceAhead, Store, StoreError,
                   StoreIdentity, StoreRejected, StoreUnavailable)
from .receiver import Push, PushConflict, PushRequest, PushResult, SweepLimits, SweepRefused

__all__ = ["ChangeStream", "Order", "Push", "PushConflict", "PushRequest", "PushResult",
           "Restore", "SchemaTooNew", "SinceAhead", "Store", "StoreError", "StoreIdentity", "StoreRejected",
           "StoreUnavailable", "SweepLimits", "SweepRefused", "open_store"]


# PostgreSQL connections per worker process: one per thread, one more for the feed's
# verification and the delivered mark, never more than this (README: the arithmetic
# against max_connections for several instances).
MAX_POOL = 32


def open_store(database_url: str, threads: int = 8) -> Store:
    """Return the store for a database URL (sqlite:///path or postgresql://...), for a
    process that serves `threads` requests at once."""
    if database_url.startswith("sqlite:///"):
        from .sqlite import SqliteStore
        return SqliteStore(database_url.removeprefix("sqlite:///"))
    if database_url.startswith(("postgresql://", "postgres://")):
        from .postgresql import PostgresStore
        return PostgresStore(database_url, max_connections=min(threads + 1, MAX_POOL))
    raise ValueError(f"unsupported database URL scheme in {database_url.split(':', 1)[0]!r}")
