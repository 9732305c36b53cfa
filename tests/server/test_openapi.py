"""The OpenAPI document: served, true to the app's routes, and fuzzed with schemathesis.

The fuzz run is bounded (fixed seed, SCHEMATHESIS_EXAMPLES per operation, default 40).
Run it longer by hand, e.g.:
    SCHEMATHESIS_EXAMPLES=1000 .venv/bin/pytest tests/server/test_openapi.py -k fuzz -s
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.databases import plain_sql
from tests.support.servers import ROOT, start_gunicorn

DOCUMENT = json.loads((ROOT / "service" / "openapi.json").read_text())


def test_the_document_is_served_without_auth(make_app):
    client = make_app(AUTH_USERNAME="u", AUTH_PASSWORD="p").test_client()
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.get_json() == DOCUMENT


def test_the_document_lists_exactly_the_routes_the_app_has(app):
    routes = {(re.sub(r"<(\w+)>", r"{\1}", rule.rule), method.lower())
              for rule in app.url_map.iter_rules() if rule.endpoint != "static"
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(path, method) for path, item in DOCUMENT["paths"].items()
                  for method in item if method != "parameters"}
    assert documented == routes


def test_every_operation_documents_its_errors_in_the_one_error_shape():
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert response["$ref"] in ("#/components/responses/Error",
                                                "#/components/responses/SinceAhead",
                                                "#/components/responses/Unauthorized"), (path, method)
            protected = operation.get("security", DOCUMENT["security"]) != []
            assert ("401" in operation["responses"]) == protected, (path, method)


def test_schemathesis_fuzzing_finds_no_5xx_and_no_response_that_breaks_the_document(database_url, tmp_path):
    schemathesis = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    examples = os.environ.get("SCHEMATHESIS_EXAMPLES", "40")
    server = start_gunicorn(database_url, tmp_path, AUTH_USERNAME="fuzz", AUTH_PASSWORD="fuzz-password",
                            LOG_LEVEL="WARNING")
    try:
        # Every check but two: negative_data_rejection, because unknown query parameters
        # are ignored on purpose (Sesam may send more than since/limit/subset); and
        # positive_data_acceptance, because OpenAPI cannot say "at most 10 digits after
        # the point" for TotalSum, so some schema-valid numbers are rightly refused.
        result = subprocess.run(
            [schemathesis, "run", f"{server.url}/openapi.json", "--auth", "fuzz:fuzz-password",
             "--checks", "all", "--exclude-checks", "negative_data_rejection,positive_data_acceptance",
             "--phases", "examples,coverage,fuzzing,stateful", "--max-examples", examples,
             "--seed", "20261128", "--no-color"],
            cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False)
    finally:
        server.stop()
    summary = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    print(f"schemathesis: {summary.group(0) if summary else 'no summary'}")
    assert result.returncode == 0, result.stdout[-6000:]
    assert summary and int(summary.group(1)) > 100
    # Nothing half-written: every live order has exactly its change, every change parses.
    with plain_sql(database_url) as connection:
        orders = {row[0] for row in connection.execute("SELECT id FROM orders").fetchall()}
        changes = connection.execute("SELECT order_id, entity FROM changes").fetchall()
    live = {order_id for order_id, entity in changes if not json.loads(entity).get("_deleted")}
    assert live == orders
