"""Sesam's `json` sink, emulated: push entities to a receiver by the JSON push protocol
(shared/docs/sesam.md section 8), so a receiver can be tried without a Sesam node.

As the sink does: one sequence per run with a fresh `sequence_id`; batches of
`batch_size` entities, each request with a fresh `request_id` and, after the first,
the `previous_request_id` of the last request taken; a full run sends `is_full=true`,
`is_first=true` on its first request and ends with a final, possibly empty, batch
marked `is_last=true`. A batch answered 400 is sent again one entity at a time
(`fallback_to_single_entities_on_batch_fail`); an entity that fails alone is
dead-lettered and the run goes on. A 409 or any other error fails the run: the next
run starts a new sequence.
"""
from __future__ import annotations

import http.client
import json
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from . import Reply, http_call, stop_on_401, with_params

# POST <path> with query parameters and a body; answer the reply.
Poster = Callable[[str, dict, bytes], Reply]


class SinkFailed(Exception):
    """The run failed; what was taken before it stays taken."""


@dataclass
class SinkConfig:
    path: str = "/api/receivers/orders/entities"
    batch_size: int = 100
    empty_last_batch: bool = True  # a full run ends with an empty is_last batch
    fallback_to_single_entities: bool = True


@dataclass
class SinkResult:
    sequence_id: str
    requests: int = 0
    entities: int = 0
    dead_lettered: list[dict] = field(default_factory=list)
    last_reply: dict = field(default_factory=dict)
    last_request_id: str | None = None  # the last request the receiver took


def http_poster(base_url: str, username: str | None = None, password: str | None = None,
                timeout: float = 60.0) -> Poster:
    def post(path: str, params: dict, body: bytes) -> Reply:
        url = with_params(urllib.parse.urljoin(base_url, path), params)
        try:
            return http_call("POST", url, username, password, body, timeout,
                             headers={"Content-Type": "application/json"})
        except (http.client.HTTPException, OSError) as error:
            raise SinkFailed(f"POST {url} failed: {type(error).__name__}: {error}") from error
    return post


class Sink:
    def __init__(self, post: Poster, config: SinkConfig | None = None):
        self.post, self.config = post, config or SinkConfig()

    def run(self, entities: list[dict], full: bool = False) -> SinkResult:
        """Push the entities as one sequence; raise SinkFailed if the receiver refuses."""
        result = SinkResult(sequence_id=str(uuid.uuid4()))
        previous: str | None = None
        batches = list(_batches(entities, self.config.batch_size))
        if full and (self.config.empty_last_batch or not batches):
            batches.append([])
        for number, batch in enumerate(batches):
            flags = {"is_first": number == 0, "is_last": number == len(batches) - 1} if full else {}
            previous = self._send(result, batch, previous, full, flags)
        return result

    def _send(self, result: SinkResult, batch: list[dict], previous: str | None,
              full: bool, flags: dict) -> str | None:
        reply = self._request(result, batch, previous, full, flags)
        if reply.status == 200:
            return result.last_request_id
        if reply.status == 400 and len(batch) > 1 and self.config.fallback_to_single_entities:
            # One entity at a time; is_last (if any) stays on the batch's last request.
            for index, entity in enumerate(batch):
                single = {**flags, "is_last": flags.get("is_last", False) and index == len(batch) - 1,
                          "is_first": flags.get("is_first", False) and previous is None}
                previous = self._send_single(result, entity, previous, full, single)
            return previous
        if reply.status == 400 and len(batch) == 1:
            result.dead_lettered.append(batch[0])
            return previous
        raise SinkFailed(f"the receiver answered HTTP {reply.status}: {reply.body[:400]!r}")

    def _send_single(self, result: SinkResult, entity: dict, previous: str | None,
                     full: bool, flags: dict) -> str | None:
        reply = self._request(result, [entity], previous, full, flags)
        if reply.status == 200:
            return result.last_request_id
        if reply.status == 400:
            result.dead_lettered.append(entity)
            return previous
        raise SinkFailed(f"the receiver answered HTTP {reply.status}: {reply.body[:400]!r}")

    def _request(self, result: SinkResult, batch: list[dict], previous: str | None,
                 full: bool, flags: dict) -> Reply:
        request_id = str(uuid.uuid4())
        params: dict[str, Any] = {"sequence_id": result.sequence_id, "request_id": request_id}
        if previous is not None:
            params["previous_request_id"] = previous
        if full:
            params["is_full"] = "true"
            params.update({name: "true" for name, on in flags.items() if on})
        reply = self.post(self.config.path, params, json.dumps(batch).encode())
        result.requests += 1
        if reply.status == 200:
            result.entities += len(batch)
            result.last_request_id = request_id
            result.last_reply = json.loads(reply.body)
        return reply


def _batches(entities: list[dict], size: int) -> Iterator[list[dict]]:
    for start in range(0, len(entities), size):
        yield entities[start:start + size]


def main(argv: list[str]) -> int:
    """`python -m tests.sesam_emulator push FILE`: push a JSON file of entities."""
    import argparse
    import sys
    from pathlib import Path
    from tests.support.credentials import Unauthorized, endpoint
    from . import split_url

    parser = argparse.ArgumentParser(prog="python -m tests.sesam_emulator push",
                                     description="Push a JSON array of entities as a Sesam json sink would.")
    parser.add_argument("file", type=Path, help="a JSON array of Sesam entities")
    parser.add_argument("--url", help="the receiver's URL (default: this service, "
                                      "http://127.0.0.1:$PORT/api/receivers/orders/entities)")
    parser.add_argument("--full", action="store_true",
                        help="a full sync: is_full, is_first, and a final empty is_last batch")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    entities = json.loads(args.file.read_text())
    if not isinstance(entities, list):
        print(f"{args.file}: not a JSON array of entities", file=sys.stderr)
        return 2
    target = endpoint(args.url, "/api/receivers/orders/entities")
    base, path = split_url(target.url)
    sink = Sink(stop_on_401(http_poster(base, target.username, target.password, args.timeout)),
                SinkConfig(path=path, batch_size=args.batch_size))
    try:
        result = sink.run(entities, full=args.full)
    except Unauthorized:
        print(target.unauthorized(), file=sys.stderr)
        return 2
    except SinkFailed as error:
        print(f"push FAILED: {error}", file=sys.stderr)
        return 1
    print(f"{'full' if args.full else 'incremental'} push: {result.entities} entities in "
          f"{result.requests} request(s), sequence {result.sequence_id}; "
          f"{len(result.dead_lettered)} dead-lettered; last answer: {json.dumps(result.last_reply)}")
    for entity in result.dead_lettered:
        print(f"dead-lettered: {json.dumps(entity)[:300]}")
    return 0
