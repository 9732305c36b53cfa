"""Settings from the environment, validated once at start.

Every knob the service has is read here and nowhere else, so a bad value stops the
process with one clear message instead of failing later in the middle of a request.
"""
from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass, fields
from collections.abc import Mapping

from .store.receiver import SweepLimits

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off", "")

# Every variable the service reads at start, with its default. The Sesam config tests
# check the bundled system config against this list, so keep it complete.
DEFAULTS = {
    "HOST": "0.0.0.0",
    "PORT": "5000",
    "DATABASE_URL": "sqlite:///data/orders.sqlite3",
    "AUTH_USERNAME": "",
    "AUTH_PASSWORD": "",
    # Without credentials the service refuses to serve; this says an open service is meant.
    "ALLOW_UNAUTHENTICATED": "false",
    "LOG_LEVEL": "INFO",
    # Measured at Sesam's default limits (128 MB, a quarter core; sesam-config/README.md):
    # one worker with eight threads serves four full syncs, two writers and incremental
    # pulls with a quarter of the memory two workers take, and no slower, since the
    # quarter core is the limit, not the worker count.
    "WEB_CONCURRENCY": "1",
    "THREADS": "8",
    "LOAD_SAMPLE_ORDERS": "false",
    # A parsed order takes ~10x its JSON size in Python: 1 MB (about 10,000 orders a
    # batch) keeps a worker well inside Sesam's 128 MB container.
    "MAX_BODY_BYTES": str(1024 * 1024),
    "GRACEFUL_TIMEOUT": "60",
    # A client that sends its body, or takes the response, slower than this is cut off:
    # no progress for this long, or a whole body not in within it.
    "CLIENT_TIMEOUT_S": "30",
    "MIGRATE_ON_START": "true",
    # The end of a full sync from Sesam deletes what it did not send, but never more than
    # this share of the store, and nothing when it sent nothing (store/README.md).
    "RECEIVER_MAX_DELETE_SHARE": "0.5",
    "RECEIVER_ALLOW_EMPTY_FULL_SYNC": "false",
    # The feed verifies itself against the orders table this often (0: never); a run of
    # a million orders costs about a CPU-second (store/README.md).
    "VERIFY_INTERVAL_S": "3600",
}


class ConfigError(ValueError):
    """A setting has a value the service cannot run with."""


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    database_url: str
    auth_username: str
    auth_password: str
    log_level: str
    workers: int
    threads: int
    load_sample_orders: bool
    max_body_bytes: int
    graceful_timeout: int
    migrate_on_start: bool
    receiver_max_delete_share: float = 0.5
    receiver_allow_empty_full_sync: bool = False
    verify_interval_s: int = 3600
    allow_unauthenticated: bool = False
    client_timeout_s: int = 30

    @property
    def sweep_limits(self) -> SweepLimits:
        return SweepLimits(self.receiver_max_delete_share, self.receiver_allow_empty_full_sync)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.auth_username)

    def __repr__(self) -> str:
        # Every field, but never a password: not the auth one, not the database URL's.
        shown = {field.name: getattr(self, field.name) for field in fields(self)
                 if field.name != "auth_password"}
        shown["database_url"] = redact_url(self.database_url)
        return "Settings(" + ", ".join(f"{name}={value!r}" for name, value in shown.items()) + ")"

    __str__ = __repr__


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raise ConfigError naming the bad variable."""
    env = dict(DEFAULTS)
    env.update({k: v for k, v in (os.environ if environ is None else environ).items()
                if k in DEFAULTS})
    username, password = env["AUTH_USERNAME"], env["AUTH_PASSWORD"]
    if bool(username) != bool(password):
        raise ConfigError("AUTH_USERNAME and AUTH_PASSWORD must be set together (or neither)")
    if ":" in username:
        raise ConfigError("AUTH_USERNAME must not contain ':' (HTTP Basic cannot carry it)")
    level = env["LOG_LEVEL"].strip().upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {env['LOG_LEVEL']!r}")
    url = _database_url(env["DATABASE_URL"].strip())
    return Settings(
        host=env["HOST"].strip() or DEFAULTS["HOST"],
        port=_int(env, "PORT", 1, 65535),
        database_url=url,
        auth_username=username,
        auth_password=password,
        log_level=level,
        workers=_int(env, "WEB_CONCURRENCY", 1, 64),
        threads=_int(env, "THREADS", 1, 256),
        load_sample_orders=_bool(env, "LOAD_SAMPLE_ORDERS"),
        max_body_bytes=_int(env, "MAX_BODY_BYTES", 1024, 1024 ** 3),
        graceful_timeout=_int(env, "GRACEFUL_TIMEOUT", 1, 3600),
        migrate_on_start=_bool(env, "MIGRATE_ON_START"),
        receiver_max_delete_share=_share(env, "RECEIVER_MAX_DELETE_SHARE"),
        receiver_allow_empty_full_sync=_bool(env, "RECEIVER_ALLOW_EMPTY_FULL_SYNC"),
        verify_interval_s=_int(env, "VERIFY_INTERVAL_S", 0, 7 * 24 * 3600),
        allow_unauthenticated=_bool(env, "ALLOW_UNAUTHENTICATED"),
        client_timeout_s=_int(env, "CLIENT_TIMEOUT_S", 1, 3600),
    )


def check_can_serve(settings: Settings) -> None:
    """Secure by default: a service that would answer anyone is refused, unless that is
    said in so many words. The administrative commands do not serve and need no credentials."""
    if not settings.auth_enabled and not settings.allow_unauthenticated:
        raise ConfigError("AUTH_USERNAME and AUTH_PASSWORD are not set: set both (the "
                          "credentials Sesam sends), or ALLOW_UNAUTHENTICATED=true for a "
                          "deliberately open service")


def redact_url(url: str) -> str:
    """Hide the passwords in a database URL, for logs: the one before the host, and a
    `password` (or `sslpassword`) in the query."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if sep and at and ":" in creds:
        url = f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return _QUERY_PASSWORD.sub(r"\1***", url)


# libpq's connection parameters (PostgreSQL 17's list): a URL naming any other is a mistake.
LIBPQ_PARAMETERS = frozenset({
    "host", "hostaddr", "port", "dbname", "user", "password", "passfile", "require_auth",
    "channel_binding", "connect_timeout", "client_encoding", "options", "application_name",
    "fallback_application_name", "keepalives", "keepalives_idle", "keepalives_interval",
    "keepalives_count", "tcp_user_timeout", "replication", "gssencmode", "sslmode",
    "requiressl", "sslnegotiation", "sslcompression", "sslcert", "sslkey", "sslkeylogfile",
    "sslpassword", "sslcertmode", "sslrootcert", "sslcrl", "sslcrldir", "sslsni", "requirepeer",
    "ssl_min_protocol_version", "ssl_max_protocol_version", "min_protocol_version",
    "max_protocol_version", "krbsrvname", "gsslib", "gssdelegation", "service",
    "target_session_attrs", "load_balance_hosts"})
_QUERY_PASSWORD = re.compile(r"([?&](?:ssl)?password=)[^&]*")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _database_url(url: str) -> str:
    """A URL the store can open; the message never repeats the URL (it holds a password)."""
    if url.startswith("sqlite:///"):
        return url
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("DATABASE_URL must start with sqlite:/// or postgresql://")
    if _BAD_ESCAPE.search(url):
        raise ConfigError("DATABASE_URL has a '%' that is not an escape like %40: write a % in "
                          "the user name or password as %25")
    try:
        split = urllib.parse.urlsplit(url)
        split.port  # noqa: B018 - raises on a port that is not a number
        names = [name for name, _ in urllib.parse.parse_qsl(split.query, keep_blank_values=True,
                                                             strict_parsing=bool(split.query))]
    except ValueError:
        raise ConfigError("DATABASE_URL is not a valid URL (postgresql://user:password@host:5432/"
                          "dbname, with a % in it written as %25)") from None
    unknown = sorted(set(names) - LIBPQ_PARAMETERS)
    if unknown:
        raise ConfigError(f"DATABASE_URL names an unknown connection parameter {unknown[0]!r} "
                          "(PostgreSQL's libpq takes sslmode, connect_timeout, options, ...)")
    return url


def _int(env: Mapping[str, str], name: str, low: int, high: int) -> int:
    raw = env[name].strip()
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise ConfigError(f"{name} must be a whole number from {low} to {high}, got {env[name]!r}")
    return int(raw)


def _share(env: Mapping[str, str], name: str) -> float:
    raw = env[name].strip()
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:  # NaN fails this too
        raise ConfigError(f"{name} must be a number from 0 to 1 (a share of the orders), got {env[name]!r}")
    return value


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env[name].strip().lower()
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise ConfigError(f"{name} must be true or false, got {env[name]!r}")
