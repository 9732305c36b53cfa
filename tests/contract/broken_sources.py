"""Small Sesam JSON sources, each with one deliberate defect, to prove that the checker
finds what it claims (and a correct one, to prove it raises no false alarm).

A source serves 40 entities over real HTTP on 127.0.0.1, honours `since` (exclusive) and
`limit` unless its defect says otherwise, and may require a query parameter and Basic auth.
The defects that depend on an upstream failing have it fail on every second request, so
the checker's first full read is whole and a later one is not.
"""
from __future__ import annotations

import base64
import json
import random
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

COUNT = 40

# defect -> (the checker rule that must flag it, what the source does wrong)
DEFECTS = {
    "limit-ignored": ("limit-caps", "serves everything whatever the limit"),
    "since-inclusive": ("since-exclusive", "filters with >= instead of >"),
    "unsorted": ("ascending-updated", "serves the entities in no particular order"),
    "integer-id": ("id-is-string", "serves _id as a number"),
    "ties": ("no-ties-at-page-cut", "gives three entities at a time the same _updated"),
    "numbers-as-strings": ("ascending-updated", 'serves _updated "990" to "1029": "999" > "1000"'),
    "local-time-as-utc": ("utc-is-utc", "writes its local time (UTC+1) with a Z"),
    "error-in-200": ("no-error-in-200", "streams the upstream's error text into a 200 array"),
    "truncated": ("complete-reads", "closes the array early when the upstream fails midway"),
    "empty-when-down": ("no-empty-when-failing", "serves [] when the upstream is down"),
}


class Source:
    """A WSGI app: the 40 entities, served as the defect has it."""

    def __init__(self, defect: str = "", query: dict[str, str] | None = None,
                 credentials: tuple[str, str] | None = None,
                 headers: list[tuple[str, str]] | None = None):
        assert defect in DEFECTS or defect == "", defect
        self.defect, self.query, self.credentials = defect, query or {}, credentials
        self.headers = headers or []  # sent with every 200
        self.requests = 0
        self.entities = self._entities()

    def _entities(self) -> list[dict]:
        start = datetime.now(UTC) - timedelta(days=1)
        entities = []
        for i in range(COUNT):
            updated: int | str = f"{start + timedelta(seconds=i):%Y-%m-%dT%H:%M:%S.%fZ}"
            if self.defect in ("limit-ignored", "since-inclusive", "unsorted", "integer-id",
                               "error-in-200", "truncated", "empty-when-down"):
                updated = i + 1
            elif self.defect == "ties":
                updated = 1 + i // 3
            elif self.defect == "numbers-as-strings":
                updated = str(990 + i)
            elif self.defect == "local-time-as-utc":
                local = datetime.now(UTC) + timedelta(hours=1) - timedelta(minutes=COUNT - i)
                updated = f"{local:%Y-%m-%dT%H:%M:%SZ}"
            key: int | str = 100 + i if self.defect == "integer-id" else str(100 + i)
            entities.append({"_id": key, "_updated": updated, "name": f"item {i}"})
        return entities

    def __call__(self, environ, start_response):
        self.requests += 1
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        refusal = self._refusal(query, environ.get("HTTP_AUTHORIZATION", ""))
        if refusal:
            status, message = refusal
            start_response(status, [("Content-Type", "application/json")])
            return [json.dumps({"error": message}).encode()]
        try:
            page = self._select(query)
        except ValueError as error:
            start_response("400 Bad Request", [("Content-Type", "application/json")])
            return [json.dumps({"error": str(error)}).encode()]
        start_response("200 OK", [("Content-Type", "application/json"), *self.headers])
        return [self._body(page)]

    def _refusal(self, query: dict, authorization: str) -> tuple[str, str] | None:
        if any(query.get(name) != [value] for name, value in self.query.items()):
            return "404 Not Found", f"no such dataset; give {self.query}"
        if self.credentials:
            token = base64.b64encode(":".join(self.credentials).encode()).decode()
            if authorization != f"Basic {token}":
                return "401 Unauthorized", "credentials needed"
        return None

    def _select(self, query: dict) -> list[dict]:
        since = query.get("since", [None])[-1]
        limit = query.get("limit", [None])[-1]
        entities = self.entities
        if self.defect == "unsorted":
            entities = random.Random(7).sample(entities, len(entities))
        if since is not None:
            entities = [e for e in entities if self._after(e["_updated"], since)]
        if limit is not None and self.defect != "limit-ignored":
            if not limit.isdigit() or int(limit) < 1:
                raise ValueError(f"limit must be a positive integer, not {limit!r}")
            entities = entities[:int(limit)]
        return entities

    def _after(self, updated: int | str, since: str) -> bool:
        if isinstance(updated, int) or self.defect == "numbers-as-strings":
            value = int(since)  # a junk since raises ValueError: a 400
            return int(updated) >= value if self.defect == "since-inclusive" else int(updated) > value
        return updated > since

    def _body(self, page: list[dict]) -> bytes:
        upstream_fails = self.requests % 2 == 0
        if upstream_fails and self.defect == "empty-when-down":
            return b"[]"
        if upstream_fails and self.defect == "truncated":
            return json.dumps(page[:len(page) * 2 // 5]).encode()
        if upstream_fails and self.defect == "error-in-200" and page:
            good = ", ".join(json.dumps(e) for e in page[:5])
            return (f"[{good}, <class 'requests.exceptions.HTTPError'> - 400 Client Error: "
                    f"Bad Request for url: http://upstream/items]").encode()
        return json.dumps(page).encode()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


@contextmanager
def serving(source: Source, path: str = "/items") -> Iterator[str]:
    """Serve `source` at http://127.0.0.1:<free port><path>; yields that URL."""
    def app(environ, start_response):
        if environ["PATH_INFO"] != path:
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"error": "no such path"}']
        return source(environ, start_response)

    server = make_server("127.0.0.1", 0, app, server_class=_ThreadingServer,
                         handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}{path}"
    finally:
        server.shutdown()
        server.server_close()
