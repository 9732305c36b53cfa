"""Pure functions that turn entity texts and errors into response bytes."""
from __future__ import annotations

import itertools
import json
from typing import Callable, Iterable, Iterator

# A run of entities: their JSON texts joined by commas (UTF-8), and how many there are.
Chunk = tuple[bytes, int]


def json_array(chunks: Iterable[Chunk],
               on_entities: Callable[[int], None] = lambda count: None) -> Iterator[bytes]:
    """Frame chunks of comma-separated entity JSON texts as one JSON array.

    The closing `]` is yielded only after `chunks` is exhausted. If `chunks` raises, the
    exception propagates and the array is left open: the server then aborts the
    response, so a client can never take a truncated stream for a complete one.
    """
    opened = False
    for text, count in chunks:
        if count:
            yield (b"," if opened else b"[") + text
            opened = True
            on_entities(count)
    yield b"]" if opened else b"[]"


def prefetched(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """Read the first chunk now, so a failure can still be a proper error response."""
    first = next(chunks, None)
    return chunks if first is None else itertools.chain([first], chunks)


def error_body(status: int, error: str, message: str, request_id: str | None) -> bytes:
    """The one JSON error shape every endpoint answers with."""
    body = {"status": status, "error": error, "message": message}
    if request_id:
        body["request_id"] = request_id
    return json.dumps(body).encode()
