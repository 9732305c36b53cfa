"""Deterministic benchmark orders: the same seed gives the same orders in every process."""
from __future__ import annotations

import random
from collections.abc import Iterator

from service.store import Order

PRODUCTS = ["Thinkpad X1 Carbon", "MacbookPro 14", "Chromebook Plus", "Dell XPS 13",
            "Surface Laptop 6", "Framework 13", "Pixelbook Go", "ZenBook 14"]


def orders(count: int, seed: int = 42) -> Iterator[Order]:
    rng = random.Random(seed)
    for order_id in range(1, count + 1):
        yield Order(id=order_id, username=f"user{rng.randrange(10**6):06d}",
                    orders=rng.choice(PRODUCTS),
                    total_sum=f"{rng.randrange(100, 5_000_000) / 100:.2f}")
