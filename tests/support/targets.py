"""Targets the contract suite runs against: the in-process app, a real gunicorn, any URL.

A target answers GET (through the same transport the Sesam pipe emulator uses) and, when
it has a write API the suite may use, PUT and DELETE of orders.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from collections.abc import Callable

from tests.support.servers import basic_auth
from tests.sesam_emulator import Reply, Transport, http_transport, split_url


@dataclass
class Target:
    name: str
    pull_path: str
    transport: Transport                 # authenticated GET
    anonymous: Transport                 # GET without credentials
    wrong_password: Transport            # GET with a wrong password
    auth_configured: bool
    write: Callable[[str, str, dict | None], int] | None = None  # (method, path, body) -> status

    def get(self, path: str | None = None, **params) -> Reply:
        return self.transport(path or self.pull_path, params)

    def pull(self, **params) -> list[dict]:
        reply = self.get(**params)
        assert reply.status == 200, f"HTTP {reply.status}: {reply.body[:300]!r}"
        return json.loads(reply.body)


def flask_target(client, username: str | None, password: str | None) -> Target:
    def transport(headers: dict) -> Transport:
        def get(path: str, params: dict) -> Reply:
            response = client.get(path, query_string=params or None, headers=headers)
            try:
                return Reply(response.status_code, response.content_type, response.get_data(),
                             {name.lower(): value for name, value in response.headers.items()})
            finally:
                response.close()  # as a WSGI server would: releases the stream's connection
        return get

    good = basic_auth(username, password or "") if username else {}

    def write(method: str, path: str, body: dict | None) -> int:
        return client.open(path, method=method, json=body, headers=good).status_code

    return Target("app", "/api/orders", transport(good), transport({}),
                  transport(basic_auth(username or "x", "wrong-password")), bool(username), write)


def http_target(name: str, url: str, username: str | None, password: str | None,
                writable: bool, timeout: float = 60.0) -> Target:
    """The URL as given: its path (or "/") and its query string, to which since/limit are added."""
    base_url, pull_path = split_url(url)

    def write(method: str, path: str, body: dict | None) -> int:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if username:
            headers.update(basic_auth(username, password or ""))
        request = urllib.request.Request(base_url.rstrip("/") + path, data=data, method=method,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    return Target(name, pull_path, http_transport(base_url, username, password, timeout),
                  http_transport(base_url, timeout=timeout),
                  http_transport(base_url, username or "x", "wrong-password", timeout),
                  bool(username), write if writable else None)


def pipe_orders(pipe) -> dict[str, tuple]:
    """The live orders a pipe's dataset holds, as (Username, Orders, TotalSum) by `_id`."""
    return {key: (e["Username"], e["Orders"], float(e["TotalSum"]))
            for key, e in pipe.state.live().items()}
