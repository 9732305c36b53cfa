import json

import pytest

from service.serialize import error_body, json_array


def test_chunks_become_one_json_array():
    counts = []
    pieces = list(json_array(iter([(b'{"a":1},{"a":2}', 2), (b'{"a":3}', 1)]), counts.append))
    assert json.loads(b"".join(pieces)) == [{"a": 1}, {"a": 2}, {"a": 3}]
    assert counts == [2, 1]


def test_no_entities_is_an_empty_array():
    assert b"".join(json_array(iter([]))) == b"[]"
    assert b"".join(json_array(iter([(b"", 0)]))) == b"[]"


def test_a_failing_chunk_source_leaves_the_array_open():
    def broken():
        yield b'{"a":1}', 1
        yield b'{"a":2}', 1
        raise RuntimeError("disk gone")

    pieces: list[bytes] = []
    with pytest.raises(RuntimeError):
        pieces.extend(json_array(broken()))
    assert b"".join(pieces) == b'[{"a":1},{"a":2}'
    assert not b"".join(pieces).endswith(b"]")


def test_error_body_shape():
    assert json.loads(error_body(400, "bad_request", "nope", "abc")) == {
        "status": 400, "error": "bad_request", "message": "nope", "request_id": "abc"}
