"""The orders the contract suite writes on a target it may write to."""
from __future__ import annotations

from tests.support.targets import Target

SEED_IDS = range(1, 41)          # orders the suite writes on its own targets
REMOTE_SEED_BASE = 9_000_000_000  # ids it writes on a --service-url target (--allow-writes)


def seed(target: Target, ids: list[int]) -> None:
    """Give a writable target creates, updates and deletes, so every rule has data to act on."""
    if target.write is None:
        return
    for order_id in ids:
        status = target.write("PUT", f"/api/orders/{order_id}", order(order_id))
        if status in (404, 405):
            target.write = None  # the target has no write API like ours
            return
        assert status in (200, 201), status
    for order_id in ids[::8]:
        assert target.write("PUT", f"/api/orders/{order_id}", order(order_id, "changed")) == 200
    for order_id in ids[3::9]:
        assert target.write("DELETE", f"/api/orders/{order_id}", None) == 204


def order(order_id: int, username: str = "contract") -> dict:
    return {"id": order_id, "Username": username, "Orders": "Thinkpad", "TotalSum": order_id + 0.25}
