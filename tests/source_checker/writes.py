"""Orders the checker writes through this service's order API (`--allow-writes` only)."""
from __future__ import annotations

import random

from tests.support.targets import Target

BASE_ID = 9_000_000_000  # far above any real order id
SEED_IDS = range(BASE_ID + 1, BASE_ID + 41)


def order(order_id: int, username: str = "checker") -> dict:
    return {"id": order_id, "Username": username, "Orders": "Thinkpad", "TotalSum": order_id % 1000 + 0.25}


def pick_id() -> int:
    return BASE_ID + random.randint(100, 10_000)


def seed(target: Target) -> str:
    """Give a writable source creates, updates and deletes, so every rule has data to act on.
    Returns what it did, or why it could not (the target then counts as read-only)."""
    if target.write is None:
        return ""
    ids = list(SEED_IDS)
    for order_id in ids:
        status = target.write("PUT", f"/api/orders/{order_id}", order(order_id))
        if status not in (200, 201):
            target.write = None
            return f"PUT /api/orders/{order_id} answered {status}: not this service's order API; " \
                   "checking read-only"
    for order_id in ids[::8]:
        target.write("PUT", f"/api/orders/{order_id}", order(order_id, "changed"))
    for order_id in ids[3::9]:
        target.write("DELETE", f"/api/orders/{order_id}", None)
    return f"wrote {len(ids)} orders ({ids[0]}-{ids[-1]}), updated and deleted some"
