"""The floor: the service's own server stack with nothing behind it, for comparison only.

gunicorn runs with service/gunicorn.conf.py (the same worker class, workers, threads and
logging as the service) and serves this Flask app, which answers from bytes it was given:
the service's own full-sync body (streamed in chunks of about the size the service sends)
and its own small-pull body. No database, no parsing, no access log. What this costs in
memory and CPU is what gunicorn and Flask cost before the service does any work, so no
configuration of this stack can beat it.

    gunicorn -c service/gunicorn.conf.py tests.bench.floor:app
    (FLOOR_FULL_BODY and FLOOR_SMALL_BODY name the two files)
"""
from __future__ import annotations

import os
from pathlib import Path

from flask import Flask, Response, request

CHUNK_BYTES = 256 * 1024  # about one chunk of the service's stream (2,000 entities)


def build_app(full_body: Path, small_body: bytes) -> Flask:
    app = Flask(__name__)

    @app.get("/api/orders")
    def pull() -> Response:
        if "limit" in request.args:
            return Response(small_body, mimetype="application/json")
        return Response(_chunks(full_body), mimetype="application/json")

    @app.get("/health")
    def health() -> Response:
        return Response(b'{"status":"ok"}', mimetype="application/json")

    return app


def _chunks(path: Path):
    with open(path, "rb") as body:
        while chunk := body.read(CHUNK_BYTES):
            yield chunk


app = build_app(Path(os.environ["FLOOR_FULL_BODY"]), Path(os.environ["FLOOR_SMALL_BODY"]).read_bytes())
