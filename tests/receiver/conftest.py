"""Helpers for the receiver's tests: the app's test client as a Sesam json sink and pipe."""
from __future__ import annotations

import json

import pytest

from tests.sesam_emulator import Pipe, PipeConfig, Reply, with_params
from tests.support.apps import client_transport
from tests.sesam_emulator.sink import Sink, SinkConfig

RECEIVER = "/api/receivers/orders/entities"


def client_poster(client):
    def post(path: str, params: dict, body: bytes) -> Reply:
        response = client.post(with_params(path, params), data=body, content_type="application/json")
        return Reply(response.status_code, response.mimetype, response.data)
    return post


def push(client, entities, **params):
    """One push request; the parameters as the protocol names them (booleans as true)."""
    query = {name: ("true" if value is True else value) for name, value in params.items()
             if value is not None and value is not False}
    return client.post(with_params(RECEIVER, query), data=json.dumps(entities),
                       content_type="application/json")


def entity(order_id: int, username: str = "ann", total="~f12.10", **extra) -> dict:
    return {"_id": str(order_id), "id": order_id, "Username": username, "Orders": "Thinkpad",
            "TotalSum": total, **extra}


def feed(client, since: int = 0) -> list[dict]:
    response = client.get(f"/api/orders?since={since}")
    body = json.loads(response.data)
    response.close()
    return body


def max_updated(client) -> int:
    entities = feed(client)
    return entities[-1]["_updated"] if entities else 0


@pytest.fixture
def sink(client):
    return lambda **config: Sink(client_poster(client), SinkConfig(**config))


@pytest.fixture
def pipe(client):
    """The collect pipe: pulling marks the feed as delivered, as Sesam's pulls do."""
    return Pipe(client_transport(client), PipeConfig())
