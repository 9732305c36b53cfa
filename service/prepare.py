"""Preparing a store when the service starts: the schema, then the samples, once."""
from __future__ import annotations

import logging

from .config import Settings
from .samples import SAMPLE_ORDERS
from .store import Store, StoreUnavailable

log = logging.getLogger("service")
RETRY_S = 5  # how often gunicorn.conf.py tries again


def prepare_store(store: Store, settings: Settings, quiet: bool = False) -> bool:
    """Migrate (MIGRATE_ON_START) and load the sample orders into a store that never held
    any (LOAD_SAMPLE_ORDERS). Say whether the store is ready: a database that is down is
    logged, not raised, so the service still starts, answers 503, and /health says why.
    `quiet`: the failure of a retry is logged at DEBUG (gunicorn.conf.py logs one try in
    six, every 30 s, so the 1,000 lines the portal shows are not all the same one)."""
    try:
        if settings.migrate_on_start:
            store.migrate()
        if settings.load_sample_orders and store.load_if_empty(SAMPLE_ORDERS):
            log.info("loaded the sample orders into the empty store")
    except StoreUnavailable as error:
        cause = str(error.__cause__ or "").strip().splitlines()[:1]
        log.log(logging.DEBUG if quiet else logging.ERROR,
                "could not prepare the store: %s%s; trying again every %s s", error,
                f" ({cause[0][:200]})" if cause else "", RETRY_S)
        return False
    return True
