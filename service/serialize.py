"""Pure functions that turn entity texts and errors into response bytes."""
from __future__ import annotations

import itertools
import json
from typing import Callable, Iterable, Iterator


def json_array(first: list[str], rest: Iterable[list[str]],
               on_entities: Callable[[int], None] = lambda count: None) -> Iterator[bytes]:
    """Frame chunks of entity JSON texts as one JSON array, one piece per chunk.

    The closing `]` is yielded only after `rest` is exhausted. If `rest` raises, the
    exception propagates and the array is left open: the server then aborts the
    response, so a client can never take a truncated stream for a complete one.
    """
    opened = False
    for chunk in itertools.chain([first], rest):
        if chunk:
            yield (("," if opened else "[") + ",".join(chunk)).encode()
            opened = True
            on_entities(len(chunk))
    yield b"]" if opened else b"[]"


def first_and_rest(chunks: Iterator[list[str]]) -> tuple[list[str], Iterator[list[str]]]:
    """Pull the first chunk now (so a failure can still be a proper error response)."""
    first = next(chunks, [])
    return first, chunks


def error_body(status: int, error: str, message: str, request_id: str | None) -> bytes:
    """The one JSON error shape every endpoint answers with."""
    body = {"status": status, "error": error, "message": message}
    if request_id:
        body["request_id"] = request_id
    return json.dumps(body).encode()
