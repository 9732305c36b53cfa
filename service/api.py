"""The HTTP routes: parse the request, call the store, map the result. No SQL, no JSON building."""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from importlib import resources
from typing import Any, TypeVar

from flask import Blueprint, Response, current_app, request
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import (BadRequest, NotFound, RequestEntityTooLarge, RequestTimeout,
                                 UnsupportedMediaType)

from .access_log import PULL_STATS, PullStats
from .admission import Admission, Busy
from .deadline import BodyDeadline
from .entities import InvalidEntity, parse_entities
from .orders import InvalidOrder, parse_id, parse_json, parse_order, parse_orders
from .params import parse_pull_params, parse_push_params
from .serialize import dataset_headers, json_array
from .store import Store, StoreError
from .store.base import CHUNK_ROWS

bp = Blueprint("api", __name__)
log = logging.getLogger("service")
JSON = "application/json"
_ID_PATH = re.compile(r"[1-9][0-9]{0,18}")
T = TypeVar("T")
OPENAPI = resources.files(__package__).joinpath("openapi.json").read_bytes()


def store() -> Store:
    return current_app.extensions["store"]


def admission() -> Admission:
    return current_app.extensions["admission"]


@bp.get("/api/orders")
def pull_orders() -> Response:
    """Sesam's JSON pull endpoint: changes after `since`, oldest first, at most `limit`."""
    params = parse_pull_params(request.args.to_dict(flat=False))
    stats = request.environ[PULL_STATS] = PullStats(params.since, params.limit)
    stream = store().open_changes(params.since, params.limit)
    headers = dataset_headers(stream.identity)
    chunks = stream.chunks()  # the first chunk was read when the stream opened
    delivered = _on_delivered(stream, stats)
    try:
        if stream.exhausted:
            # The whole answer is in memory already (a small or incremental pull): send
            # it in one piece with a Content-Length, and give the connection back now.
            stream.close()
            body = b"".join(json_array(chunks, stats.add))
            stats.complete = True
            response = Response(body, mimetype=JSON, headers=headers)
            response.call_on_close(delivered)
            return response
    except BaseException:
        stream.close()
        raise

    # A long pull (no limit, or more than a read of the store) holds its thread at the
    # client's pace, so only so many at once; a page of up to CHUNK_ROWS is at most two
    # reads (about 250 KB) and is not held to a place.
    long = params.limit is None or params.limit > CHUNK_ROWS
    if long:
        try:
            admission().long_pull()
        except Busy:
            stream.close()
            raise

    def streamed_body():
        yield from json_array(chunks, stats.add)
        stats.complete = True

    response = Response(streamed_body(), mimetype=JSON, headers=headers)
    response.call_on_close(stream.close)
    if long:
        response.call_on_close(admission().end_long_pull)
    response.call_on_close(delivered)
    return response


def _on_delivered(stream, stats: PullStats):
    """Once the response is sent: if it held the feed to its end, record how far the
    feed has been delivered (the receiver's rule for what Sesam has seen)."""
    the_store, highest = store(), stream.identity.max_updated

    def record() -> None:
        if stats.complete and stream.reached_end and highest is not None:
            try:
                the_store.note_delivered(highest)
            except StoreError as error:  # the mark stays lower: pushes are kept back, not lost
                log.warning("could not record how far the feed was delivered: %s", error)
    return record


@bp.post("/api/receivers/orders/entities")
def receive_entities() -> Response:
    """Sesam's JSON push protocol: a batch of entities, in or out of a sequence."""
    push = parse_push_params(request.args.to_dict(flat=False))
    try:
        pushes = _parsed_body(parse_entities)
    except InvalidEntity as error:
        if push.is_full:
            store().protect(push, error.order_ids)
        raise
    settings = current_app.extensions["settings"]
    result = store().receive(push, pushes, settings.sweep_limits)
    return _json_response(result.as_dict())


@bp.get("/api/orders/<order_id>")
def get_order(order_id: str) -> Response:
    body = store().get_order(_path_id(order_id))
    if body is None:
        raise NotFound(f"order {order_id} does not exist")
    return Response(body, mimetype=JSON)


@bp.put("/api/orders/<order_id>")
def put_order(order_id: str) -> Response:
    url_id = _path_id(order_id)
    order = _parsed_body(lambda body: parse_order(body, url_id=url_id))
    created, _ = store().upsert_orders([order])
    return Response(store().get_order(order.id), status=201 if created else 200, mimetype=JSON)


@bp.delete("/api/orders/<order_id>")
def delete_order(order_id: str) -> Response:
    if not store().delete_order(_path_id(order_id)):
        raise NotFound(f"order {order_id} does not exist")
    return Response(status=204)


@bp.post("/api/orders")
def upsert_orders() -> Response:
    """Create or replace many orders in one transaction: all or nothing."""
    orders = _parsed_body(parse_orders)
    created, updated = store().upsert_orders(orders)
    return _json_response({"created": created, "updated": updated})


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI document of every endpoint (service/openapi.json)."""
    return Response(OPENAPI, mimetype=JSON)


@bp.get("/health")
def health() -> Response:
    store().ping()
    return _json_response({"status": "ok", "receiver": store().receiver_status(),
                           "verification": store().verification_status()})


def _json_response(document: dict) -> Response:
    return Response(json.dumps(document), mimetype=JSON)


def _path_id(raw: str) -> int:
    if not _ID_PATH.fullmatch(raw):
        raise InvalidOrder("the order id in the URL must be a whole number from 1 to 2**63-1")
    return parse_id(int(raw), "the order id in the URL")


def _parsed_body(parse: Callable[[Any], T]) -> T:
    """The JSON body, read and parsed (and freed) while holding a place at the body gate,
    so a body waiting its turn stays in the socket, not in memory."""
    if request.mimetype != JSON:
        raise UnsupportedMediaType("send the body as application/json")
    with admission().body(request.content_length):
        return parse(parse_json(_whole_body(current_app.config["MAX_CONTENT_LENGTH"])))


def _whole_body(limit: int) -> bytes:
    """The request body, all of it, or an error: never a part of it taken for the whole.

    Werkzeug stops reading a chunked body at the limit without a word, and a body that
    ends before its Content-Length reads as a shorter one; either could be valid JSON.
    So read one byte past the limit, and compare what came with what was declared."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise RequestEntityTooLarge(f"the body is larger than {limit} bytes (MAX_BODY_BYTES)")
    seconds = current_app.extensions["settings"].client_timeout_s
    deadline = BodyDeadline(request.environ.get("gunicorn.socket"), seconds)
    try:
        with deadline:
            body = request.environ["wsgi.input"].read(limit + 1 if declared is None else declared)
    except (ParseException, OSError) as error:  # gunicorn's, for a malformed chunk; a client gone
        if deadline.passed:
            raise RequestTimeout(_too_slow(seconds)) from error
        raise BadRequest("the request body is malformed or was cut off") from error
    if deadline.passed:
        raise RequestTimeout(_too_slow(seconds))
    if len(body) > limit:
        raise RequestEntityTooLarge(f"the body is larger than {limit} bytes (MAX_BODY_BYTES)")
    if declared is not None and len(body) < declared:
        raise BadRequest(f"the body ended after {len(body)} of the {declared} bytes its "
                         "Content-Length declares")
    return body


def _too_slow(seconds: int) -> str:
    return f"the request body did not arrive within {seconds} s (CLIENT_TIMEOUT_S)"
