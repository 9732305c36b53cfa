"""The feed's periodic verification: a thread in each worker that, every so often, asks
the store whether a run is due (the database decides, so one runs at a time across every
worker and instance) and runs it (store/verify.py)."""
from __future__ import annotations

import logging
import random
import threading
import time

from .store import Store, StoreError

log = logging.getLogger("service")
FIRST_CHECK_S = 10  # after start: the workers' first requests come first
MAX_CHECK_S = 60


def start_periodic_verification(store: Store, interval_s: int) -> threading.Thread | None:
    """Start the thread (none when VERIFY_INTERVAL_S is 0)."""
    if interval_s <= 0:
        return None
    thread = threading.Thread(target=_run, args=(store, interval_s), name="verify-feed", daemon=True)
    thread.start()
    return thread


def _run(store: Store, interval_s: int) -> None:
    wait = min(FIRST_CHECK_S, interval_s) * random.uniform(1, 2)  # workers and instances apart
    unavailable = False
    while True:
        time.sleep(wait)
        wait = min(interval_s, MAX_CHECK_S) * random.uniform(1, 1.5)
        try:
            store.verify_if_due(interval_s)
            unavailable = False
        except StoreError as error:  # the database is down: /health says so already
            if not unavailable:
                log.warning("the feed's verification could not run: %s", error)
            unavailable = True
