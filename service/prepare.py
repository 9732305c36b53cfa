"""Preparing a store when the service starts: the schema, then the samples, once."""
from __future__ import annotations

import logging

from .config import Settings
from .samples import SAMPLE_ORDERS
from .store import Store, StoreUnavailable

log = logging.getLogger("service")


def prepare_store(store: Store, settings: Settings) -> bool:
    """Migrate (MIGRATE_ON_START) and load the sample orders into a store that never held
    any (LOAD_SAMPLE_ORDERS). Say whether the store is ready: a database that is down is
    logged, not raised, so the service still starts, answers 503, and /health says why."""
    try:
        if settings.migrate_on_start:
            store.migrate()
        if settings.load_sample_orders and store.load_if_empty(SAMPLE_ORDERS):
            log.info("loaded the sample orders into the empty store")
    except StoreUnavailable as error:
        log.error("could not prepare the store: %s", error, exc_info=error.__cause__)
        return False
    return True
