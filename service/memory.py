"""Giving memory back to the operating system after a large request.

A batch of ~10,000 orders (1 MB of JSON) becomes about 10 MB of Python objects while it is
parsed, validated and written. Freed, most of that stays with the process: glibc keeps
the freed pages of its heap for later. In a 128 MB container that high-water mark would
stay charged for good, and a second burst on top of it can be an OOM kill. After a
request with a large body, malloc_trim(0) returns the heap's free pages to the kernel.

It is WSGI middleware, not a Flask teardown hook, because every small pull would pay for
the hook: by the time the app has returned its response, the view, the error handlers and
the request context are done, and a large body's objects are garbage.
"""
from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable, Iterable

LARGE_BODY_BYTES = 256 * 1024  # smaller bodies leave too little behind to be worth a trim


def _load_malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None on a C library without it (musl, macOS)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_malloc_trim = _load_malloc_trim()


def release_after(content_length: int | None) -> bool:
    """Trim the heap if the request that just ended had a large body; say whether."""
    if _malloc_trim is None or not content_length or content_length < LARGE_BODY_BYTES:
        return False
    _malloc_trim(0)
    return True


class ReleaseAfterLargeBodies:
    """WSGI middleware: trim the heap once a request with a large body has been answered."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        response = self.app(environ, start_response)
        length = environ.get("CONTENT_LENGTH", "")
        if length.isdigit():
            release_after(int(length))
        return response
