"""Command line of the checker: python -m tests.source_checker --help."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tests.source_checker import check, junit, text
from tests.source_checker.writes import seed
from tests.support.targets import http_target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.source_checker",
        description="Check a Sesam JSON source against the pull protocol (MUST) and good "
                    "practice (SHOULD). Exit code 0: no failure; 1: a failure.")
    parser.add_argument("url", help="the pull URL as the pipe would call it, query string included")
    parser.add_argument("--user", default=os.environ.get("SOURCE_USER") or None,
                        help="Basic-auth user (default $SOURCE_USER); the password is read "
                             "from $SOURCE_PASSWORD")
    parser.add_argument("--strict", action="store_true", help="SHOULD failures fail too")
    parser.add_argument("--junit", type=Path, help="write a JUnit XML report to this file")
    parser.add_argument("--allow-writes", action="store_true",
                        help="the source is this service: write and delete orders with ids "
                             "from 9,000,000,000 to check writes and tombstones")
    parser.add_argument("--repeat", type=int, default=3,
                        help="full reads to compare, to catch a source that fails quietly (default 3)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    args = parser.parse_args(argv)

    target = http_target("url", args.url, args.user, os.environ.get("SOURCE_PASSWORD"),
                         writable=args.allow_writes, timeout=args.timeout)
    seeded = seed(target)
    report = check(target, strict=args.strict, repeat=max(2, args.repeat))
    report.url = args.url
    report.notes = [seeded] if seeded else []
    print(text(report))
    if args.junit:
        args.junit.write_bytes(junit(report))
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
