"""Validate an order from a client's JSON into an Order, or say exactly what is wrong."""
from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

from .params import MAX_INT64
from .store import Order

FIELDS = ("id", "Username", "Orders", "TotalSum")
MAX_TEXT = 1000
BLANK = " \t\n\r"  # what makes a text empty, here and in the databases' CHECKs
# A sum fits in 28 digits before and 10 after the point: generous for money, and it
# keeps `1e999999999` from being expanded into a billion characters.
MAX_INTEGER_DIGITS, MAX_FRACTION_DIGITS = 28, 10
CONTAINER_BYTES = 16  # the fewest bytes per JSON array or object a body may have


class InvalidOrder(ValueError):
    """The body is not a valid order; the message names the field."""


def parse_json(body: bytes) -> Any:
    """Parse a request body strictly: exact decimals, no NaN, no duplicate keys, and no
    more arrays and objects than orders could need."""
    _check_density(body)
    try:
        text = body.decode("utf-8")
        return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant,
                          object_pairs_hook=_no_duplicate_keys)
    except UnicodeDecodeError as error:
        raise InvalidOrder("the body is not UTF-8") from error
    except RecursionError as error:
        raise InvalidOrder("the body is nested too deeply") from error
    except ValueError as error:  # JSONDecodeError, and the hooks' errors
        raise InvalidOrder(f"the body is not valid JSON: {error}") from error


def _check_density(body: bytes) -> None:
    """Every array or object costs Python about 60 bytes however little JSON spells it: 1 MiB
    of nested `[[[]]]` is 45 MB parsed, which Sesam's 128 MB cannot hold beside the rest.
    An order is one object in some 70 bytes, and a Sesam entity a few in hundreds, so a
    body with more than one per CONTAINER_BYTES bytes is refused before it is parsed (counted
    in two passes over the bytes; brackets inside strings count too, erring on the safe side)."""
    containers = body.count(b"[") + body.count(b"{")
    if containers > len(body) // CONTAINER_BYTES + 64:
        raise InvalidOrder(f"the body holds {containers} JSON arrays and objects in {len(body)} "
                           f"bytes; orders need at most one per {CONTAINER_BYTES} bytes")


def parse_order(value: Any, url_id: int | None = None, where: str = "") -> Order:
    """Validate one order object; `url_id` is the id from the URL, if any."""
    if not isinstance(value, dict):
        raise InvalidOrder(f"{where or 'the body'} must be a JSON object")
    for key in value:
        if key.startswith("_"):
            raise InvalidOrder(f"{where}field '{key}': names starting with '_' are reserved by Sesam")
        if key not in FIELDS:
            raise InvalidOrder(f"{where}field '{key}' is unknown; the fields are {', '.join(FIELDS)}")
    if url_id is not None and "id" not in value:
        value = {**value, "id": url_id}
    missing = [field for field in FIELDS if field not in value]
    if missing:
        raise InvalidOrder(f"{where}field '{missing[0]}' is missing")
    order_id = parse_id(value["id"], f"{where}field 'id'")
    if url_id is not None and order_id != url_id:
        raise InvalidOrder(f"field 'id' is {order_id} but the URL names order {url_id}")
    return Order(id=order_id,
                 username=parse_text(value["Username"], f"{where}field 'Username'"),
                 orders=parse_text(value["Orders"], f"{where}field 'Orders'"),
                 total_sum=parse_total_sum(value["TotalSum"], f"{where}field 'TotalSum'"))


def parse_orders(value: Any) -> list[Order]:
    """Validate a JSON array of orders with distinct ids."""
    if not isinstance(value, list):
        raise InvalidOrder("the body must be a JSON array of orders")
    orders = [parse_order(item, where=f"order [{index}]: ") for index, item in enumerate(value)]
    seen: set[int] = set()
    for index, order in enumerate(orders):
        if order.id in seen:
            raise InvalidOrder(f"order [{index}]: id {order.id} appears more than once")
        seen.add(order.id)
    return orders


def parse_id(value: Any, what: str = "the order id") -> int:
    """An id is a whole number from 1 to 2**63-1 (a JSON integer, not a bool or a float)."""
    if type(value) is not int or not 1 <= value <= MAX_INT64:
        raise InvalidOrder(f"{what} must be a whole number from 1 to {MAX_INT64}")
    return value


def parse_text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidOrder(f"{what} must be a string")
    if not value.strip(BLANK):
        raise InvalidOrder(f"{what} must not be empty")
    if len(value) > MAX_TEXT:
        raise InvalidOrder(f"{what} is longer than {MAX_TEXT} characters")
    if value.startswith("~"):
        raise InvalidOrder(f"{what} must not start with '~' (Sesam reads that as a typed value)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidOrder(f"{what} holds an unpaired surrogate") from error
    return value


def parse_total_sum(value: Any, what: str) -> str:
    if type(value) is int:
        value = Decimal(value)
    if not isinstance(value, Decimal):
        raise InvalidOrder(f"{what} must be a number")
    try:
        exponent = value.as_tuple().exponent  # a letter only for NaN and infinities
        exponent_ok = value.is_finite() and isinstance(exponent, int) and -MAX_FRACTION_DIGITS <= exponent
        digits_ok = exponent_ok and value.adjusted() < MAX_INTEGER_DIGITS
    except InvalidOperation:  # pragma: no cover - Decimal from JSON is always well formed
        exponent_ok = digits_ok = False
    if not (exponent_ok and digits_ok):
        raise InvalidOrder(f"{what} must have at most {MAX_INTEGER_DIGITS} digits before "
                           f"and {MAX_FRACTION_DIGITS} after the decimal point")
    if value < 0:
        raise InvalidOrder(f"{what} must not be negative")
    if value.is_zero():
        value = value.copy_abs()  # -0 is 0 (PostgreSQL's numeric has no negative zero)
    # Plain notation keeps the scale the client gave: 12.10 stays "12.10".
    return format(value, "f")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()  # a set, not names.count(): linear in the object's size
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"key {key!r} appears more than once")
            seen.add(key)
    return result
