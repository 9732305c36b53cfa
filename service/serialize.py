"""Pure functions that turn entity texts and errors into response bytes."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator

from .store.base import StoreIdentity

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


def dataset_headers(identity: StoreIdentity) -> list[tuple[str, str]]:
    """The JSON pull protocol's response headers for a pull from a store with this
    identity (docs.sesam.io, JSON Pull Protocol, Response headers). Offsets are
    JSON-encoded; a store with no changes has no highest offset to send."""
    headers = [("X-Dataset-Generation", identity.generation)]
    if identity.max_updated is not None:
        headers.append(("X-Dataset-Max-Updated", json.dumps(identity.max_updated)))
    if identity.restore_uuid is not None:
        headers.append(("X-Dataset-Restore-Uuid", identity.restore_uuid))
        headers.append(("X-Dataset-Restore-Offset", json.dumps(identity.restore_offset)))
    return headers


def error_body(status: int, error: str, message: str, request_id: str | None,
               **details: object) -> bytes:
    """The one JSON error shape every endpoint answers with (details after the message)."""
    body = {"status": status, "error": error, "message": message, **details}
    if request_id:
        body["request_id"] = request_id
    return json.dumps(body).encode()
