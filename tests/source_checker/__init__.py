"""A conformance checker for any Sesam JSON source: every rule is a MUST (stated by the JSON
pull protocol, the entity model or the continuation flags) or a SHOULD (good practice, and
this service's stricter policy); see rules.py. MUST failures fail the check; SHOULD ones
warn, unless strict.

    python -m tests.source_checker [URL] [--strict] [--no-paging] [--junit FILE] [--allow-writes]

Credentials come from the environment (tests/support/credentials.py), never the command line.
"""
from tests.source_checker.report import Report, check, junit, text

__all__ = ["Report", "check", "junit", "text"]
