"""Sesam entities pushed to the receiver, as orders: which order each names, and what
becomes of it. Pure functions; the rules are in store/README.md, "Sesam writes orders"."""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from .orders import InvalidOrder, parse_id, parse_text, parse_total_sum
from .store import Order, Push

FIELDS = ("Username", "Orders", "TotalSum")
PROPERTIES = frozenset(("id", *FIELDS))
_ORDER_ID = re.compile(r"[1-9][0-9]{0,18}")
# Sesam's typed decimal: "~f" and the number in plain or exponent notation.
_DECIMAL = re.compile(r"~f(-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?)")
_PLAIN_DECIMAL = re.compile(r"~f((?:0|[1-9][0-9]{0,27})(?:\.[0-9]{1,10})?)")


class InvalidEntity(InvalidOrder):
    """One pushed entity cannot be taken; `entity_id` is its `_id` (if it has one), and
    `order_ids` every order the request named, for the sweep to spare."""

    def __init__(self, message: str, entity_id: Any, order_ids: list[int]):
        super().__init__(message)
        self.entity_id, self.order_ids = entity_id, order_ids


def parse_entities(value: Any) -> list[Push]:
    """Validate a push request's JSON array; of entities naming one order, the one with
    the highest `_updated` wins (the later one when they cannot be compared)."""
    if not isinstance(value, list):
        raise InvalidEntity("the body must be a JSON array of entities", None, [])
    latest: dict[int, tuple[Any, Push]] = {}
    for index, entity in enumerate(value):
        try:
            push = parse_entity(entity)
        except InvalidOrder as error:
            entity_id = entity.get("_id") if isinstance(entity, dict) else None
            raise InvalidEntity(f"entity [{index}] (_id {entity_id!r}): {error}", entity_id,
                                named_order_ids(value)) from error
        updated = entity.get("_updated")
        earlier = latest.get(push.order_id)
        if earlier is None or not _older(updated, earlier[0]):
            latest[push.order_id] = (updated, push)
    return [push for _, push in latest.values()]


def parse_entity(entity: Any) -> Push:
    """One entity as a Push: an order, a delete (`_deleted: true`, whatever else it
    holds), or a `$replaced` entity (merged into another in Sesam) to leave alone."""
    if not isinstance(entity, dict):
        raise InvalidOrder("an entity must be a JSON object")
    values = _order_properties(entity)
    order_id = _order_id(entity, values.get("id", []))
    deleted = entity.get("_deleted", False)
    if not isinstance(deleted, bool):
        raise InvalidOrder("_deleted must be true or false")
    if entity.get("$replaced") is True:
        return Push(order_id, None, replaced=True)
    if deleted:
        return Push(order_id, None)
    return Push(order_id, Order(id=order_id,
                                username=parse_text(_one(values, "Username"), "Username"),
                                orders=parse_text(_one(values, "Orders"), "Orders"),
                                total_sum=_total_sum(_one(values, "TotalSum"))))


def named_order_ids(value: Any) -> list[int]:
    """The order ids a request's entities name, as far as they can be read."""
    ids = []
    for entity in value if isinstance(value, list) else []:
        try:
            ids.append(_order_id(entity, _order_properties(entity).get("id", [])))
        except (InvalidOrder, AttributeError):
            pass
    return ids


def _order_id(entity: dict, candidates: list[Any]) -> int:
    """The order's id: the `id` property if there is one, else `_id` (the part after
    its last `:`, if namespaced); both, when given, must name the same order."""
    entity_id = entity.get("_id")
    if not isinstance(entity_id, str):
        raise InvalidOrder("_id must be a string")
    tail = entity_id.rsplit(":", 1)[-1]
    if not _ORDER_ID.fullmatch(tail):
        raise InvalidOrder(f"_id {entity_id!r} names no order id (a whole number from 1 to 2**63-1)")
    from_id = parse_id(int(tail), "the order id in _id")
    if not candidates:
        return from_id
    given = parse_id(_one({"id": candidates}, "id"), "id")
    if given != from_id:
        raise InvalidOrder(f"id {given} disagrees with _id {entity_id!r}")
    return given


def _order_properties(entity: dict) -> dict[str, list[Any]]:
    """The distinct values of each order property, under its own name or a namespaced
    one (`global-order:Username`), in one pass over the entity's keys."""
    found: dict[str, list[Any]] = {}
    for key, value in entity.items():
        if key in PROPERTIES:
            name = key
        elif ":" in key and key[0] not in "_$":
            name = key.rpartition(":")[2]
            if name not in PROPERTIES:
                continue
        else:
            continue
        values = found.get(name)
        if values is None:
            found[name] = [value]
        elif not any(_equal(value, seen) for seen in values):
            values.append(value)
    return found


def _one(values: dict[str, list[Any]], name: str) -> Any:
    candidates = values.get(name)
    if not candidates:
        raise InvalidOrder(f"{name} is missing")
    if len(candidates) > 1:
        raise InvalidOrder(f"{name} is given under several names with different values")
    return candidates[0]


def _equal(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _total_sum(value: Any) -> str:
    """TotalSum as the order API keeps it. Sesam's usual decimal, `~f` and plain digits
    within the bounds, is taken as the text it is (what the Decimal would print)."""
    if isinstance(value, str):
        plain = _PLAIN_DECIMAL.fullmatch(value)
        if plain:
            return plain.group(1)
    return parse_total_sum(_number(value), "TotalSum")


def _number(value: Any) -> Any:
    """Sesam's `~f` decimal string as the exact Decimal; anything else as it came."""
    if isinstance(value, str):
        match = _DECIMAL.fullmatch(value)
        if not match:
            raise InvalidOrder("TotalSum must be a number or a Sesam decimal (\"~f12.10\")")
        try:
            return Decimal(match.group(1))
        except InvalidOperation as error:  # pragma: no cover - the pattern admits none
            raise InvalidOrder("TotalSum is not a decimal") from error
    return value


def _older(updated: Any, other: Any) -> bool:
    """Whether `updated` is older than `other`; values that cannot be compared (absent,
    or not both numbers) are not: the later entity wins."""
    numbers = (int, float, Decimal)
    if isinstance(updated, numbers) and isinstance(other, numbers) \
            and not isinstance(updated, bool) and not isinstance(other, bool):
        return updated < other
    return False
