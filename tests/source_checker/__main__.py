"""Command line of the checker: python -m tests.source_checker --help."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.sesam_emulator import RunFailed
from tests.source_checker import check, junit, text
from tests.source_checker.writes import seed
from tests.support.credentials import endpoint
from tests.support.targets import http_target

PASSED, FAILED, NOT_CHECKED = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.source_checker",
        description="Check a Sesam JSON source against the pull protocol (MUST) and good "
                    "practice (SHOULD). Without a URL it checks this service "
                    "(http://127.0.0.1:$PORT/api/orders, with AUTH_USERNAME/AUTH_PASSWORD); a "
                    "URL given is checked with URL_USER/URL_PASSWORD only. Exit code 0: "
                    "passed; 1: a rule failed; 2: could not check (e.g. a 401).")
    parser.add_argument("url", nargs="?", help="the pull URL as the pipe calls it, query string "
                                               "included (default: this service)")
    parser.add_argument("--strict", action="store_true", help="SHOULD failures fail too")
    parser.add_argument("--no-paging", action="store_true",
                        help="the pipe reads without page_size: rules only paging needs are not judged")
    parser.add_argument("--junit", type=Path, help="write a JUnit XML report to this file")
    parser.add_argument("--allow-writes", action="store_true",
                        help="the source is this service: write and delete orders with ids "
                             "from 9,000,000,000 to check writes and tombstones")
    parser.add_argument("--repeat", type=int, default=3,
                        help="full reads to compare, to catch a source that fails quietly (default 3)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    args = parser.parse_args(argv)

    source = endpoint(args.url, "/api/orders")
    target = http_target("url", source.url, source.username, source.password,
                         writable=args.allow_writes, timeout=args.timeout)
    try:
        refused = target.get(limit=1).status == 401
    except RunFailed:
        refused = False  # unreachable or broken: the rules say so, json-array first
    if refused:
        print(source.unauthorized(), file=sys.stderr)
        return NOT_CHECKED
    seeded = seed(target)
    report = check(target, strict=args.strict, repeat=max(2, args.repeat), pages=not args.no_paging)
    report.url = source.url
    report.notes = [seeded] if seeded else []
    print(text(report))
    if args.junit:
        args.junit.write_bytes(junit(report))
    return PASSED if report.passed else FAILED


if __name__ == "__main__":
    sys.exit(main())
