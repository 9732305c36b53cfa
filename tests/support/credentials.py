"""Where a tool sends its requests, and with which credentials: one rule for every tool.

- No URL given: the tool talks to this service, at http://127.0.0.1:$PORT (default 5000),
  with the service's own AUTH_USERNAME and AUTH_PASSWORD.
- A URL given: the tool talks to that, with URL_USER and URL_PASSWORD only, never this
  service's credentials (they must not leak to someone else's source).

A password is read from the environment, never from the command line (it would show in
`ps` and in shell history). A 401 stops a tool at once with one line naming the variables.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoint:
    url: str
    username: str | None
    password: str | None
    user_variable: str
    password_variable: str

    def unauthorized(self) -> str:
        """The one line a tool prints when the endpoint answers 401."""
        given = "were refused" if self.username else "are not set"
        return (f"{self.url} answered 401: the credentials in {self.user_variable} and "
                f"{self.password_variable} {given}; set them to the ones it expects")


class Unauthorized(Exception):
    """The endpoint answered 401: nothing a tool does next can succeed."""


def endpoint(url: str | None, own_path: str, environ: Mapping[str, str] | None = None) -> Endpoint:
    """The endpoint a tool talks to: `url` as given, or this service's `own_path`."""
    env = os.environ if environ is None else environ
    if url:
        return Endpoint(url, env.get("URL_USER") or None, env.get("URL_PASSWORD"),
                        "URL_USER", "URL_PASSWORD")
    port = env.get("PORT") or "5000"
    return Endpoint(f"http://127.0.0.1:{port}{own_path}", env.get("AUTH_USERNAME") or None,
                    env.get("AUTH_PASSWORD"), "AUTH_USERNAME", "AUTH_PASSWORD")


def tool_environment(*dropped: str, **extra: str) -> dict[str, str]:
    """This process's environment for running a tool (or make) in a test: without any
    credentials of the shell that runs the tests (AUTH_*, URL_*), without make's own
    variables (a make that runs the tests passes MAKEFLAGS down), without the variables
    whose names start with `dropped`; then `extra` on top."""
    prefixes = ("AUTH_", "URL_", "MAKE", *dropped)
    environment = {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}
    environment.update(extra)
    return environment
