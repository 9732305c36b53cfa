import json

import pytest

from service.serialize import error_body, first_and_rest, json_array


def test_chunks_become_one_json_array():
    counts = []
    pieces = list(json_array(['{"a":1}', '{"a":2}'], iter([['{"a":3}']]), counts.append))
    assert json.loads(b"".join(pieces)) == [{"a": 1}, {"a": 2}, {"a": 3}]
    assert counts == [2, 1]


def test_no_entities_is_an_empty_array():
    assert b"".join(json_array([], iter([]))) == b"[]"


def test_a_failing_chunk_source_leaves_the_array_open():
    def broken():
        yield ['{"a":2}']
        raise RuntimeError("disk gone")

    pieces = []
    with pytest.raises(RuntimeError):
        for piece in json_array(['{"a":1}'], broken()):
            pieces.append(piece)
    assert b"".join(pieces) == b'[{"a":1},{"a":2}'
    assert not b"".join(pieces).endswith(b"]")


def test_first_and_rest_reads_one_chunk_ahead():
    first, rest = first_and_rest(iter([["1"], ["2"]]))
    assert first == ["1"] and list(rest) == [["2"]]
    assert first_and_rest(iter([]))[0] == []


def test_error_body_shape():
    assert json.loads(error_body(400, "bad_request", "nope", "abc")) == {
        "status": 400, "error": "bad_request", "message": "nope", "request_id": "abc"}
