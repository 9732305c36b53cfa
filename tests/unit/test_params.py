import pytest

from service.params import MAX_INT64, BadParameter, PullParams, parse_pull_params


def test_absent_parameters_mean_from_the_start_without_limit():
    assert parse_pull_params({}) == PullParams(since=0, limit=None)


def test_valid_values():
    assert parse_pull_params({"since": ["21"], "limit": ["3"]}) == PullParams(21, 3)
    assert parse_pull_params({"since": ["0"]}) == PullParams(0, None)
    assert parse_pull_params({"since": [str(MAX_INT64)], "limit": [str(MAX_INT64)]}).since == MAX_INT64


def test_other_parameters_are_ignored():
    assert parse_pull_params({"subset": ["x"], "since": ["5"]}) == PullParams(5, None)


@pytest.mark.parametrize("name, value", [
    ("since", "abc"), ("since", "1.5"), ("since", "-1"), ("since", ""), ("since", " 7"),
    ("since", "+7"), ("since", "7_0"), ("since", "١٢"), ("since", "0x10"), ("since", "1e3"),
    ("since", str(MAX_INT64 + 1)), ("since", "9" * 40),
    ("limit", "0"), ("limit", "-3"), ("limit", "abc"), ("limit", ""), ("limit", "2.0"),
    ("limit", str(2 ** 64)),
])
def test_junk_is_an_error_naming_the_parameter(name, value):
    with pytest.raises(BadParameter, match=f"'{name}'"):
        parse_pull_params({name: [value]})


def test_a_repeated_parameter_is_an_error():
    with pytest.raises(BadParameter, match="given 2 times"):
        parse_pull_params({"since": ["1", "2"]})
