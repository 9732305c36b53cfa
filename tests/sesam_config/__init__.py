"""Generate the parts of sesam-config/ that must match the code, and check they still do.

    python -m tests.sesam_config          # rewrite the generated parts (make sesam-config)
    python -m tests.sesam_config --check  # exit 1 if they drifted (the tests do this too)

Generated: the `test` alternative of the collect pipe's conditional source (an embedded
source holding exactly the entities the service emits for the sample orders) and the
expected output of the endpoint pipe that `sesam test` verifies.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from tests.support.apps import prepared_app
from service.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "sesam-config"
SYSTEM_ID = "orders-source"
COLLECT = f"{SYSTEM_ID}-order-collect"
ENDPOINT = f"{SYSTEM_ID}-order-endpoint"


def sample_entities() -> list[dict]:
    """What the real service serves on a full pull of a store holding the sample orders."""
    with tempfile.TemporaryDirectory() as folder:
        settings = load_settings({"DATABASE_URL": f"sqlite:///{folder}/orders.sqlite3",
                                  "LOAD_SAMPLE_ORDERS": "true", "LOG_LEVEL": "ERROR"})
        response = prepared_app(settings).test_client().get("/api/orders")
        assert response.status_code == 200
        entities = json.loads(response.data)
    # The service's `_updated` values are the clock's (microseconds of each write), so they
    # differ on every load; the embedded copy numbers them in the same order instead.
    assert [e["_updated"] for e in entities] == sorted({e["_updated"] for e in entities})
    return [{**entity, "_updated": rank} for rank, entity in enumerate(entities, 1)]


def expected_output(entities: list[dict]) -> list[dict]:
    """The endpoint pipe's entities as `sesam verify` compares them: no internal properties
    but `_id`, sorted by `_id`."""
    kept = [{key: value for key, value in entity.items() if key == "_id" or not key.startswith("_")}
            for entity in entities if not entity.get("_deleted")]
    return sorted(kept, key=lambda entity: entity["_id"])


def render() -> dict[Path, str]:
    """Every generated file, with its full new text."""
    entities = sample_entities()
    collect_path = CONFIG / "pipes" / f"{COLLECT}.conf.json"
    collect = json.loads(collect_path.read_text())
    collect["source"]["alternatives"]["test"] = {"type": "embedded", "entities": entities}
    return {
        collect_path: dump(collect),
        CONFIG / "expected" / f"{ENDPOINT}.json": dump(expected_output(entities)),
    }


def dump(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report drift")
    args = parser.parse_args(argv)
    drifted = [path for path, text in render().items()
               if not path.exists() or path.read_text() != text]
    if args.check:
        for path in drifted:
            print(f"drifted from the code: {path.relative_to(ROOT)} (run make sesam-config)")
        return 1 if drifted else 0
    for path, text in render().items():
        path.write_text(text)
    print(f"wrote {len(drifted)} changed file(s)")
    return 0
