"""A local Sesam pipe emulator: pulls from a source the way a Sesam inbound pipe with a
`json` source does, so a source can be tried and tested without a Sesam node.

What it does, as Sesam does (see the README and shared/docs/sesam.md):
- a full run (no `since`) the first time, or when asked; then incremental runs from the
  stored offset, `since` = the `_updated` of the last entity seen;
- with a page size: `?limit=N`, then `?since=<last>&limit=N` ... until a page is empty;
- a dataset keyed by `_id` holding the latest version of each entity; `_deleted: true`
  marks one deleted; after a full run every entity the run did not return is marked
  deleted (deletion tracking);
- `if_source_empty="fail"` makes an empty full run fail;
- a page longer than the limit it was asked for fails the run;
- a run that fails (an HTTP error, a body that is not a JSON array of entities, a
  truncated body, a dropped connection) changes neither the dataset nor the offset,
  except with is_chronological: then, as Sesam saves the offset during the run, what
  arrived whole before the failure is kept and the offset moves with it; deletion
  tracking still waits for a complete full run;
- the pull protocol's X-Dataset-* headers, as automatic reprocessing reads them: a
  changed X-Dataset-Generation (the source's store was created anew), or a new
  X-Dataset-Restore-Uuid whose offset lies below the pipe's (the source was restored
  to a point before what the pipe saw), put the pipe out of sync. With
  reprocessing="automatic" the pipe resets itself and runs a full sync; with
  "continue" (Sesam's default) the run fails and says why.

Command line: python -m tests.sesam_emulator [--url URL] (see --help); `python -m
tests.sesam_emulator push FILE` plays a json sink (sink.py). Without --url both talk to
this service with its AUTH_USERNAME/AUTH_PASSWORD; a URL given gets URL_USER/URL_PASSWORD
(tests/support/credentials.py).
The state file keeps one pipe per source URL (the URL's query string included).
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable

from tests.support.credentials import Unauthorized, endpoint


class RunFailed(Exception):
    """The pipe run failed. `partial` holds the bytes of a body that broke off mid-stream;
    `kept` says what a chronological pipe kept of the run."""

    def __init__(self, message: str, partial: bytes = b""):
        super().__init__(message)
        self.partial = partial
        self.kept = ""


class OutOfSync(Exception):
    """The source's headers say the pipe's offset no longer means what it did."""


@dataclass
class Reply:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case


# A transport answers GET <path>?<query> or raises RunFailed when the body breaks.
Transport = Callable[[str, dict], Reply]


def http_call(method: str, url: str, username: str | None, password: str | None,
              body: bytes | None = None, timeout: float = 60.0,
              headers: dict[str, str] | None = None) -> Reply:
    """One HTTP request with optional Basic auth; an error status is a Reply too. A body
    that breaks off raises http.client.IncompleteRead, a failed connection OSError."""
    headers = dict(headers or {})
    if username is not None:
        token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reply(response.status, response.headers.get("Content-Type", ""),
                         response.read(), _lower(response.headers))
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.headers.get("Content-Type", ""), error.read(),
                     _lower(error.headers))


def http_transport(base_url: str, username: str | None = None, password: str | None = None,
                   timeout: float = 60.0) -> Transport:
    """GET over real HTTP with optional Basic auth; a truncated body raises RunFailed."""
    def get(path: str, params: dict) -> Reply:
        url = with_params(urllib.parse.urljoin(base_url, path), params)
        try:
            return http_call("GET", url, username, password, timeout=timeout,
                             headers={"Accept": "application/json"})
        except http.client.IncompleteRead as error:
            raise RunFailed(f"GET {url}: the body broke off after {len(error.partial)} bytes",
                            partial=error.partial) from error
        except (http.client.HTTPException, OSError) as error:
            raise RunFailed(f"GET {url} failed: {type(error).__name__}: {error}") from error

    return get


def stop_on_401(call: Callable[..., Reply]) -> Callable[..., Reply]:
    """The same call, raising Unauthorized on a 401: no later request can do better."""
    def guarded(*args: Any) -> Reply:
        reply = call(*args)
        if reply.status == 401:
            raise Unauthorized()
        return reply
    return guarded


def with_params(url: str, params: dict) -> str:
    """`url` with `params` added to the query string it may already have."""
    split = urllib.parse.urlsplit(url)
    pairs = urllib.parse.parse_qsl(split.query, keep_blank_values=True) + list(params.items())
    return urllib.parse.urlunsplit(split._replace(query=urllib.parse.urlencode(pairs)))


def split_url(url: str) -> tuple[str, str]:
    """A pull URL as (base, path): the path as given ("/" if none), its query string kept."""
    split = urllib.parse.urlsplit(url)
    return (f"{split.scheme}://{split.netloc}/",
            (split.path or "/") + (f"?{split.query}" if split.query else ""))


def _lower(headers) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


@dataclass
class PipeConfig:
    """The json source's settings that change how Sesam pulls."""
    path: str = "/api/orders"  # with the url's query string, if it has one
    supports_since: bool = True
    is_chronological: bool = False
    page_size: int | None = None
    if_source_empty: str = "accept"  # or "fail"
    reprocessing: str = "continue"  # reprocessing_policy: or "automatic"


@dataclass(frozen=True)
class SourceIdentity:
    """What the X-Dataset-* headers said of the source's store."""
    generation: str | None
    restore_uuid: str | None
    restore_offset: Any

    @classmethod
    def of(cls, reply: Reply) -> SourceIdentity:
        offset = reply.headers.get("x-dataset-restore-offset")
        return cls(reply.headers.get("x-dataset-generation"),
                   reply.headers.get("x-dataset-restore-uuid"),
                   None if offset is None else json.loads(offset))


@dataclass
class PipeState:
    offset: Any = None
    dataset: dict[str, dict] = field(default_factory=dict)
    generation: str | None = None  # the source's, as of the last run
    restore_uuid: str | None = None

    def live(self) -> dict[str, dict]:
        """The entities not marked deleted, keyed by `_id`."""
        return {key: entity for key, entity in self.dataset.items() if not entity.get("_deleted")}

    def save(self, path: Path, url: str) -> None:
        """Keep this pipe's state under its source URL, beside the other URLs' pipes."""
        pipes = _load_pipes(path)
        pipes[url] = {"offset": self.offset, "dataset": self.dataset,
                      "generation": self.generation, "restore_uuid": self.restore_uuid}
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"pipes": pipes}))
        temporary.replace(path)  # atomic: a crash never leaves half a state file

    @classmethod
    def load(cls, path: Path, url: str) -> PipeState:
        data = _load_pipes(path).get(url)
        if data is None:
            return cls()
        return cls(offset=data["offset"], dataset=data["dataset"],
                   generation=data.get("generation"), restore_uuid=data.get("restore_uuid"))


def _load_pipes(path: Path) -> dict[str, dict]:
    return json.loads(path.read_text()).get("pipes", {}) if path.exists() else {}


@dataclass
class RunResult:
    full: bool
    requests: int
    entities: list[dict]
    deleted_by_tracking: list[str]
    reset: str = ""  # why the pipe reset itself and ran a full sync, if it did


class Pipe:
    """One inbound pipe: a source (transport + config) and its sink dataset (state)."""

    def __init__(self, transport: Transport, config: PipeConfig | None = None,
                 state: PipeState | None = None):
        self.transport = transport
        self.config = config or PipeConfig()
        self.state = state or PipeState()

    def run(self, full: bool = False) -> RunResult:
        """Run the pipe once; apply the result only if the whole run succeeded (a
        chronological pipe keeps what arrived before a failure, without deletion tracking)."""
        full = full or self.state.offset is None or not self.config.supports_since
        reset = ""
        received: list[dict] = []
        try:
            try:
                entities, requests, identity = self._pull(None if full else self.state.offset,
                                                          received)
            except OutOfSync as reason:
                if self.config.reprocessing != "automatic":
                    raise RunFailed(f"the pipe is out of sync: {reason}; reset it (a full run) "
                                    "or set reprocessing_policy automatic") from None
                full, reset = True, str(reason)
                entities, requests, identity = self._pull(None, received)
        except RunFailed as failure:
            if self.config.is_chronological and received:
                self._apply(False, received, 0)
                failure.kept = f"kept {len(received)} entities; offset now {self.state.offset!r}"
            raise
        if full and not entities and self.config.if_source_empty == "fail":
            raise RunFailed("the source returned no entities on a full run (if_source_empty=fail)")
        result = self._apply(full, entities, requests)
        self.state.generation, self.state.restore_uuid = identity.generation, identity.restore_uuid
        result.reset = reset
        return result

    def _check_identity(self, identity: SourceIdentity, since: Any) -> None:
        """Raise OutOfSync where the headers say the offset `since` is no longer valid
        (a full run, with no `since`, is in sync by definition)."""
        if since is None:
            return
        known = self.state.generation
        if known is not None and identity.generation is not None and identity.generation != known:
            raise OutOfSync(f"X-Dataset-Generation changed from {known} to "
                            f"{identity.generation}: the source's store was created anew")
        restored = identity.restore_uuid
        if restored is not None and restored != self.state.restore_uuid \
                and (identity.restore_offset is None or since > identity.restore_offset):
            raise OutOfSync(f"X-Dataset-Restore-Uuid {restored} is new and its "
                            f"X-Dataset-Restore-Offset {identity.restore_offset!r} lies below the "
                            f"pipe's offset {since!r}: the source was restored to a point before "
                            "changes this pipe has seen")

    def _pull(self, since: Any, entities: list[dict]) -> tuple[list[dict], int, SourceIdentity]:
        """Pull every page into `entities`; on a failure it holds what arrived whole."""
        requests = 0
        identity: SourceIdentity | None = None
        while True:
            params = {} if since is None else {"since": since}
            if self.config.page_size:
                params["limit"] = self.config.page_size
            try:
                reply = self._get(params)
            except RunFailed as failure:
                entities.extend(_whole_entities(failure.partial))
                raise
            if identity is None:
                identity = SourceIdentity.of(reply)
                self._check_identity(identity, since)
            elif SourceIdentity.of(reply).generation != identity.generation:
                raise RunFailed("X-Dataset-Generation changed during the run")
            page = self._entities(reply, entities)
            requests += 1
            if self.config.page_size and len(page) > self.config.page_size:
                raise RunFailed(f"a page of {len(page)} entities came back for "
                                f"limit={self.config.page_size}: the source ignores the limit")
            entities.extend(page)
            if not self.config.page_size or not page:
                return entities, requests, identity
            since = page[-1]["_updated"]

    def _get(self, params: dict) -> Reply:
        reply = self.transport(self.config.path, params)
        if reply.status == 409:
            raise RunFailed(f"the source answered HTTP 409, its offset is behind the pipe's "
                            f"(reset the pipe): {reply.body[:400]!r}")
        return reply

    def _entities(self, reply: Reply, received: list[dict]) -> list[dict]:
        """The page's entities; on a failure the whole ones before it go to `received`."""
        if reply.status != 200:
            raise RunFailed(f"the source answered HTTP {reply.status}: {reply.body[:300]!r}")
        try:
            page = json.loads(reply.body)
        except ValueError as error:
            received.extend(_whole_entities(reply.body))
            raise RunFailed(f"the body is not valid JSON (truncated?): {error}") from error
        if not isinstance(page, list):
            raise RunFailed("the body is not a JSON array")
        for position, entity in enumerate(page):
            problem = _entity_problem(entity)
            if problem:
                received.extend(page[:position])
                raise RunFailed(problem)
        return page

    def _apply(self, full: bool, entities: list[dict], requests: int) -> RunResult:
        """Store the run's entities; only a complete full run tracks deletions."""
        dataset = self.state.dataset
        for entity in entities:
            dataset[entity["_id"]] = entity
        tracked: list[str] = []
        if full:
            seen = {entity["_id"] for entity in entities}
            for key, entity in dataset.items():
                if key not in seen and not entity.get("_deleted"):
                    dataset[key] = {"_id": key, "_deleted": True, "_updated": entity.get("_updated")}
                    tracked.append(key)
        if entities:
            self.state.offset = entities[-1]["_updated"]
        return RunResult(full, requests, entities, tracked)


def _entity_problem(entity: Any) -> str:
    if not isinstance(entity, dict) or not isinstance(entity.get("_id"), str):
        return f"not an entity with a string _id: {str(entity)[:200]}"
    if "_updated" not in entity:
        return f"entity {entity['_id']!r} has no _updated"
    return ""


def _whole_entities(body: bytes) -> list[dict]:
    """The entities of an array that broke off, up to the last valid one that arrived whole,
    as Sesam's streaming reader has already taken them in."""
    text, decoder = body.decode("utf-8", "replace"), json.JSONDecoder()
    position, entities = text.find("[") + 1, []
    while position > 0:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        try:
            entity, position = decoder.raw_decode(text, position)
        except ValueError:
            break
        if _entity_problem(entity):
            break
        entities.append(entity)
    return entities


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["push"]:  # the sink: push entities to a receiver
        from .sink import main as push
        return push(argv[1:])
    args = _arguments(argv)
    target = endpoint(args.url, "/api/orders")
    base, path = split_url(target.url)
    state = PipeState() if args.reset else PipeState.load(args.state, target.url)
    transport = stop_on_401(http_transport(base, target.username, target.password, args.timeout))
    pipe = Pipe(transport,
                PipeConfig(path=path, supports_since=not args.no_since,
                           is_chronological=args.chronological, page_size=args.page_size,
                           if_source_empty=args.if_source_empty,
                           reprocessing=args.reprocessing), state)
    try:
        result = pipe.run(full=args.full)
    except Unauthorized:
        print(target.unauthorized(), file=sys.stderr)
        return 2
    except RunFailed as error:
        if error.kept:
            state.save(args.state, target.url)
        print(f"run FAILED ({error.kept or 'dataset and offset unchanged'}): {error}",
              file=sys.stderr)
        return 1
    state.save(args.state, target.url)
    try:
        _print_result(result, state, args.show)
    except BrokenPipeError:  # the reader (e.g. `| head`) has gone: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _print_result(result: RunResult, state: PipeState, show: bool) -> None:
    if result.reset:
        print(f"the pipe reset itself (reprocessing automatic): {result.reset}")
    print(f"{'full' if result.full else 'incremental'} run: {len(result.entities)} entities "
          f"in {result.requests} request(s); offset now {state.offset!r}; dataset: "
          f"{len(state.live())} live, {len(state.dataset) - len(state.live())} deleted"
          + (f"; {len(result.deleted_by_tracking)} deleted by tracking" if result.full else ""))
    for entity in result.entities if show else ():
        print(json.dumps(entity))
    sys.stdout.flush()


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.sesam_emulator",
                                     description="Pull from a Sesam JSON source as a Sesam pipe would.")
    parser.add_argument("--url", help="the source's pull URL, query string included (default: "
                                      "this service, http://127.0.0.1:$PORT/api/orders)")
    parser.add_argument("--state", default=".emulator-state.json", type=Path,
                        help="file that keeps each source URL's offset and dataset between runs")
    parser.add_argument("--page-size", type=int, default=None)
    parser.add_argument("--full", action="store_true", help="force a full run (a rescan)")
    parser.add_argument("--no-since", action="store_true", help="supports_since=false")
    parser.add_argument("--chronological", action="store_true",
                        help="is_chronological=true: a failed run keeps what arrived before it")
    parser.add_argument("--if-source-empty", choices=("accept", "fail"), default="accept")
    parser.add_argument("--reprocessing", choices=("continue", "automatic"), default="continue",
                        help="reprocessing_policy: automatic resets the pipe when the source's "
                             "X-Dataset-* headers say it is out of sync")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--show", action="store_true", help="print every entity received")
    parser.add_argument("--reset", action="store_true",
                        help="forget this URL's offset and dataset first")
    return parser.parse_args(argv)
