"""python -m service serve: the service (what the image runs); administrative commands:
migrate | load-samples | prepare | restored | verify"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .config import ConfigError, check_can_serve, load_settings, redact_url
from .samples import SAMPLE_ORDERS
from .store import SchemaTooNew, StoreError, open_store
from .store.base import MAX_UPDATED



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    parser.add_argument("command", choices=("serve", "migrate", "load-samples", "prepare", "restored",
                                            "verify"),
                        help="serve: check every setting, then run the service under gunicorn; "
                             "migrate: create or upgrade the schema and its change tracking; "
                             "load-samples: load the sample orders into a store that never held any; "
                             "prepare: what the service does at start (MIGRATE_ON_START, "
                             "LOAD_SAMPLE_ORDERS), logged as JSON; "
                             "restored: run once after restoring a backup of the database; "
                             "verify: compare the orders table with the feed and repair every "
                             "difference (exit 0: they agreed, 1: differences found, 2: it could not run)")
    parser.add_argument("--past", type=_offset, default=0, metavar="OFFSET",
                        help="restored: also move new _updated values past OFFSET (e.g. the "
                             "highest offset a pipe shows in the Sesam portal)")
    parser.add_argument("--dry-run", action="store_true",
                        help="verify: report the differences, change nothing")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve()
    if args.command == "prepare":
        return _prepare()
    if args.command == "verify":
        return _verify(args.dry_run)
    try:
        settings = load_settings()
        store = open_store(settings.database_url)
        try:
            store.migrate()
            if args.command == "load-samples":
                loaded = store.load_if_empty(SAMPLE_ORDERS)
                print("loaded the sample orders" if loaded else "the store is not empty: nothing loaded")
            elif args.command == "restored":
                restore = store.record_restore(args.past)
                print(f"recorded restore {restore.restore_uuid} at offset {restore.restore_offset}; "
                      f"new changes get _updated above {restore.next_updated_above}. Pulls now "
                      "carry X-Dataset-Restore-Uuid and X-Dataset-Restore-Offset; a pipe whose "
                      f"offset is past {restore.restore_offset} saw changes the backup lost and "
                      "must be reset (reprocessing_policy automatic does it by itself)")
            else:
                print(f"schema ready in {redact_url(settings.database_url)}")
        finally:
            store.close()
    except (ConfigError, StoreError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _offset(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) >= MAX_UPDATED:
        raise argparse.ArgumentTypeError(f"must be a whole number below {MAX_UPDATED}")
    return int(text)


def _serve() -> int:
    """Check every setting first, in one line each, then become gunicorn (exec: its
    master gets the signals, as PID 1 in a container). gunicorn reads WEB_CONCURRENCY
    itself as it is imported, so a bad value is caught here, before it can fail there."""
    try:
        check_can_serve(load_settings())
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return os.EX_CONFIG
    config = Path(__file__).with_name("gunicorn.conf.py")
    os.execv(sys.executable, [sys.executable, "-m", "gunicorn", "-c", str(config)])
    return 0  # pragma: no cover - execv does not return


def _verify(dry_run: bool) -> int:
    """Exit 0 when the table and the feed agreed, 1 when they did not (repaired unless a
    dry run), 2 when the verification could not run."""
    try:
        settings = load_settings()
        store = open_store(settings.database_url)
        try:
            result = store.verify(repair=not dry_run)
        finally:
            store.close()
    except (ConfigError, StoreError) as error:
        print(f"error: the verification could not run: {error}", file=sys.stderr)
        return 2
    for problem in result.tracking:
        print(f"change tracking: {problem}" + (" (put back)" if result.repaired else ""))
    print(f"{result.orders} orders checked in {result.seconds:.1f} s: {result.missing} missing "
          f"from the feed, {result.stale} stale, {result.orphaned} deleted without a tombstone"
          + ("" if not result.differences else
             " (repaired: fresh changes recorded)" if result.repaired else " (dry run: nothing changed)"))
    for kind, order_ids in result.examples.items():
        if order_ids:
            print(f"  {kind}, e.g. orders {', '.join(map(str, order_ids))}")
    return 1 if result.differences or result.tracking else 0


def _prepare() -> int:
    """What the service does once per start (gunicorn.conf.py runs it before the workers):
    exit 0 when the store is ready, EX_TEMPFAIL while the database is unavailable."""
    from .logs import setup_logging
    from .prepare import prepare_store
    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    setup_logging(settings.log_level)
    store = open_store(settings.database_url)
    try:
        attempt = int(os.environ.get("PREPARE_ATTEMPT", "0") or 0)  # set by gunicorn.conf.py
        quiet = attempt % 6 != 0
        if quiet:  # its pool would say the same thing again
            logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
        ready = prepare_store(store, settings, quiet=quiet)
    except SchemaTooNew as error:
        logging.getLogger("service").critical("the service cannot run on this database: %s", error)
        return os.EX_CONFIG  # sysexits.h: not to be retried; gunicorn.conf.py stops
    finally:
        store.close()
    return 0 if ready else os.EX_TEMPFAIL  # sysexits.h: try again later


if __name__ == "__main__":
    sys.exit(main())
