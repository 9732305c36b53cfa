"""Pick the store backend from DATABASE_URL."""
from __future__ import annotations

from .base import (ChangeStream, Order, Restore, SchemaTooNew, SinceAhead, Store, StoreError,
                   StoreIdentity, StoreRejected, StoreUnavailable)
from .receiver import Push, PushConflict, PushRequest, PushResult, SweepLimits, SweepRefused

__all__ = ["ChangeStream", "Order", "Push", "PushConflict", "PushRequest", "PushResult",
           "Restore", "SchemaTooNew", "SinceAhead", "Store", "StoreError", "StoreIdentity", "StoreRejected",
           "StoreUnavailable", "SweepLimits", "SweepRefused", "open_store"]


def open_store(database_url: str) -> Store:
    """Return the store for a database URL (sqlite:///path or postgresql://...)."""
    if database_url.startswith("sqlite:///"):
        from .sqlite import SqliteStore
        return SqliteStore(database_url.removeprefix("sqlite:///"))
    if database_url.startswith(("postgresql://", "postgres://")):
        from .postgresql import PostgresStore
        return PostgresStore(database_url)
    raise ValueError(f"unsupported database URL scheme in {database_url.split(':', 1)[0]!r}")
