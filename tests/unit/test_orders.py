from decimal import Decimal

import pytest

from service.orders import InvalidOrder, parse_json, parse_order, parse_orders
from service.store import Order

GOOD = {"id": 7, "Username": "ann", "Orders": "Thinkpad", "TotalSum": 12}


def test_a_valid_order():
    assert parse_order(GOOD) == Order(7, "ann", "Thinkpad", "12")


def test_total_sum_keeps_its_exact_decimal_text():
    value = parse_json(b'{"id": 1, "Username": "a", "Orders": "b", "TotalSum": 12.10}')
    assert parse_order(value).total_sum == "12.10"
    assert parse_order({**GOOD, "TotalSum": Decimal("0.1")}).total_sum == "0.1"
    assert parse_order({**GOOD, "TotalSum": Decimal("1E+3")}).total_sum == "1000"


def test_the_id_can_come_from_the_url():
    body = {key: value for key, value in GOOD.items() if key != "id"}
    assert parse_order(body, url_id=9).id == 9


def test_an_id_that_disagrees_with_the_url_is_rejected():
    with pytest.raises(InvalidOrder, match="URL names order 8"):
        parse_order(GOOD, url_id=8)


@pytest.mark.parametrize("change, field", [
    ({"id": "7"}, "'id'"), ({"id": 0}, "'id'"), ({"id": -1}, "'id'"), ({"id": True}, "'id'"),
    ({"id": 1.0}, "'id'"), ({"id": 2 ** 63}, "'id'"),
    ({"Username": 5}, "'Username'"), ({"Username": ""}, "'Username'"),
    ({"Username": "~tx"}, "'Username'"), ({"Orders": None}, "'Orders'"),
    ({"Orders": "x" * 1001}, "'Orders'"), ({"Orders": "\ud800"}, "'Orders'"),
    ({"TotalSum": "12"}, "'TotalSum'"), ({"TotalSum": -1}, "'TotalSum'"),
    ({"TotalSum": Decimal("-0.1")}, "'TotalSum'"), ({"TotalSum": True}, "'TotalSum'"),
    ({"Username": " \t\r\n"}, "'Username'"),
    ({"TotalSum": 12.5}, "'TotalSum'"), ({"TotalSum": Decimal("1e999999999")}, "'TotalSum'"),
    ({"TotalSum": Decimal("0.00000000001")}, "'TotalSum'"),
    ({"_id": "7"}, "'_id'"), ({"Extra": 1}, "'Extra'"),
])
def test_bad_fields_are_named(change, field):
    with pytest.raises(InvalidOrder, match=field):
        parse_order({**GOOD, **change})


def test_minus_zero_is_zero_as_the_databases_keep_it():
    assert parse_order({**GOOD, "TotalSum": Decimal("-0.00")}).total_sum == "0.00"


def test_missing_field_is_named():
    with pytest.raises(InvalidOrder, match="'TotalSum' is missing"):
        parse_order({key: value for key, value in GOOD.items() if key != "TotalSum"})


@pytest.mark.parametrize("body, message", [
    (b"{", "not valid JSON"), (b'{"a": NaN}', "not valid JSON"),
    (b'{"a": 1, "a": 2}', "more than once"), (b"\xff", "not UTF-8"),
    (b"[" * 100_000, "arrays and objects"), (b"[" * 5_000 + b" " * 100_000, "nested too deeply|not valid JSON"),
])
def test_parse_json_is_strict(body, message):
    with pytest.raises(InvalidOrder, match=message):
        parse_json(body)


def test_parse_orders_wants_an_array_of_distinct_ids():
    assert [order.id for order in parse_orders([GOOD, {**GOOD, "id": 8}])] == [7, 8]
    with pytest.raises(InvalidOrder, match="JSON array"):
        parse_orders(GOOD)
    with pytest.raises(InvalidOrder, match=r"order \[1\]: id 7 appears more than once"):
        parse_orders([GOOD, GOOD])
    with pytest.raises(InvalidOrder, match=r"order \[1\]: field 'Username'"):
        parse_orders([GOOD, {**GOOD, "id": 9, "Username": 1}])


def test_a_repeated_key_among_many_is_found_in_linear_time(client):
    """An object of 60,000 keys (under 1 MiB) whose last repeats the one before: the search for the repeat
    was quadratic (minutes of CPU); now it is one pass (well under a second)."""
    import time
    body = "[{" + ",".join(f'"k{i}": 1' for i in range(60_000)) + ', "k59999": 2}]'
    started = time.monotonic()
    response = client.post("/api/orders", data=body, content_type="application/json")
    assert response.status_code == 400 and "'k59999' appears more than once" in response.get_json()["message"]
    assert time.monotonic() - started < 5


def test_a_body_denser_in_arrays_and_objects_than_orders_is_refused_before_parsing():
    """1 MiB of nested lists is 45 MB of Python objects: refused by counting brackets."""
    import time
    from service.orders import CONTAINER_BYTES, InvalidOrder, parse_json
    from tests.support.heavy_clients import nested_lists_body
    body = nested_lists_body()
    started = time.perf_counter()
    with pytest.raises(InvalidOrder, match=f"at most one per {CONTAINER_BYTES} bytes"):
        parse_json(body)
    assert time.perf_counter() - started < 0.05
    # The densest orders there are, and small nested documents, still parse.
    orders = b"[" + b",".join([b'{"id":1,"Username":"a","Orders":"b","TotalSum":1}'] * 20_000) + b"]"
    assert len(parse_json(orders)) == 20_000
    assert parse_json(b'[[[{"a": [1]}]]]') == [[[{"a": [1]}]]]
