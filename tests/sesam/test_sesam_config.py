"""The bundled Sesam config (sesam-config/) is valid, complete, and agrees with the code."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import jsonschema
import pytest

from tests.support.apps import prepared_app
from service.config import DEFAULTS, load_settings
from tests import sesam_config
from tests.support.servers import ROOT, start_gunicorn

CONFIG = ROOT / "sesam-config"
SCHEMAS = CONFIG / "schemas"
SYSTEM = json.loads((CONFIG / "systems" / "orders-source.conf.json").read_text())
COLLECT = json.loads((CONFIG / "pipes" / "orders-source-order-collect.conf.json").read_text())
SHARE = json.loads((CONFIG / "pipes" / "orders-source-order-share.conf.json").read_text())
SOURCE = COLLECT["source"]["alternatives"]["prod"]
SECRET = re.compile(r"^\$SECRET\([a-z0-9-]+\)$")
# Test-only stand-ins for the node's secrets.
SECRETS = {"orders-source-username": "sesam-node", "orders-source-password": "node-secret-for-tests",
           "orders-source-database-url": "postgresql://orders:db-secret@orders-db.example:5432/orders"}
PROD = json.loads((CONFIG / "prod-env.json").read_text())


def load(path):
    return json.loads(path.read_text())


def resolve(value: str, variables: dict = PROD) -> str:
    """Replace $SECRET(name) and $ENV(name) as a production node would (test stand-ins
    for the secrets, prod-env.json for the variables)."""
    value = re.sub(r"\$ENV\(([a-z0-9-]+)\)", lambda match: variables[match.group(1)], value)
    return re.sub(r"\$SECRET\(([a-z0-9-]+)\)", lambda match: SECRETS[match.group(1)], value)


@pytest.mark.parametrize("path", sorted((CONFIG / "systems").glob("*.conf.json")), ids=lambda p: p.name)
def test_systems_validate_against_our_schema(path):
    jsonschema.validate(load(path), load(SCHEMAS / "system-microservice.schema.json"))
    assert load(path)["_id"] == path.name.removesuffix(".conf.json")


@pytest.mark.parametrize("path", sorted((CONFIG / "pipes").glob("*.conf.json")), ids=lambda p: p.name)
def test_pipes_validate_against_our_schema(path):
    jsonschema.validate(load(path), load(SCHEMAS / "pipe.schema.json"))
    assert load(path)["_id"] == path.name.removesuffix(".conf.json")


@pytest.mark.parametrize("broken", [
    {**SOURCE, "page_size": 100, "is_chronological": False},
    {**SOURCE, "url": "/api/orders"},
    {**SOURCE, "if_source_empty": "maybe"},
    {**SOURCE, "suports_since": True},
])
def test_the_pipe_schema_catches_mistakes(broken):
    pipe = {**COLLECT, "source": {**COLLECT["source"], "alternatives": {"prod": broken}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(pipe, load(SCHEMAS / "pipe.schema.json"))


def test_the_system_schema_catches_mistakes():
    schema = load(SCHEMAS / "system-microservice.schema.json")
    for broken in ({**SYSTEM, "_id": "Orders_Source"}, {**SYSTEM, "docker": {**SYSTEM["docker"], "port": "5000"}},
                   {key: value for key, value in SYSTEM.items() if key != "password"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)


def test_names_follow_sesam_conventions():
    assert COLLECT["_id"] == f"{SYSTEM['_id']}-order-collect"
    assert SOURCE["system"] == SYSTEM["_id"]


def test_the_port_is_the_one_gunicorn_binds_and_the_image_exposes():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert SYSTEM["docker"]["port"] == int(DEFAULTS["PORT"])
    assert f"EXPOSE {SYSTEM['docker']['port']}" in dockerfile
    assert "PORT" not in SYSTEM["docker"]["environment"] or \
        SYSTEM["docker"]["environment"]["PORT"] == str(SYSTEM["docker"]["port"])


def test_the_url_is_the_pull_endpoint():
    app = prepared_app({"DATABASE_URL": "sqlite:///:memory:", "LOG_LEVEL": "ERROR"})
    rules = {rule.rule: rule.endpoint for rule in app.url_map.iter_rules() if "GET" in rule.methods}
    assert rules["/" + SOURCE["url"]] == "api.pull_orders"


def test_the_share_pipe_pushes_to_the_receiver_in_batches_that_fit_a_request():
    app = prepared_app({"DATABASE_URL": "sqlite:///:memory:", "LOG_LEVEL": "ERROR"})
    rules = {rule.rule: rule.endpoint for rule in app.url_map.iter_rules() if "POST" in rule.methods}
    sink = SHARE["sink"]
    assert SHARE["_id"] == f"{SYSTEM['_id']}-order-share" and sink["system"] == SYSTEM["_id"]
    assert sink["type"] == "json" and rules["/" + sink["url"]] == "api.receive_entities"
    # The largest order Sesam can hold, every character \u-escaped, with room to spare
    # for the other properties a global dataset carries (the receiver ignores them).
    largest = json.dumps({"_id": "9" * 19, "id": 2 ** 63 - 1, "Username": "\u00e9" * 1000,
                          "Orders": "\u00e9" * 1000, "TotalSum": "~f" + "9" * 28 + "." + "9" * 10})
    room = int(DEFAULTS["MAX_BODY_BYTES"]) // sink["batch_size"] - len(largest)
    assert room >= 4096, f"a batch of {sink['batch_size']} may not fit MAX_BODY_BYTES"
    assert SHARE["source"] == {"type": "dataset", "dataset": "$ENV(orders-source-share-dataset)"}
    assert SHARE["pump"]["rescan_cron_expression"]  # full syncs, whose end deletes


def test_the_share_pipe_is_off_on_a_test_node_and_scheduled_in_production():
    """`sesam test` must not need the service: its node has no image to push to."""
    assert SHARE["pump"]["mode"] == "$ENV(orders-source-share-pump-mode)"
    assert load(CONFIG / "test-env.json")["orders-source-share-pump-mode"] == "off"
    assert PROD["orders-source-share-pump-mode"] == "scheduled"


def test_the_image_is_exactly_what_make_push_publishes():
    # docker.image is a node variable; `make sesam-env` prints its value for the image
    # that `make push` publishes (`make image-name`), whatever IMAGE and TAG are.
    assert SYSTEM["docker"]["image"] == "$ENV(orders-source-image)"
    args = ["make", "-s", "--no-print-directory", "IMAGE=registry.example/team/orders", "TAG=v1.2.3"]
    pushed = subprocess.run([*args, "image-name"], cwd=ROOT, capture_output=True, text=True, check=True)
    env = subprocess.run([*args, "sesam-env"], cwd=ROOT, capture_output=True, text=True, check=True)
    variables = json.loads(env.stdout)
    assert variables["orders-source-image"] == pushed.stdout.strip()
    # ...with the rest of production's variables; node-env stays the node's own
    assert variables == {key: value for key, value in PROD.items() if key != "node-env"} | {
        "orders-source-image": pushed.stdout.strip()}
    assert pushed.stdout.strip() == "registry.example/team/orders:v1.2.3"
    default_image = re.search(r"^IMAGE\s*\?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.MULTILINE).group(1)
    assert load(CONFIG / "test-env.json")["orders-source-image"].startswith(default_image + ":")


def test_the_environment_is_complete_and_valid_for_the_service():
    environment = SYSTEM["docker"]["environment"]
    assert all(isinstance(value, str) for value in environment.values())  # passed as-is
    assert set(environment) <= set(DEFAULTS), set(environment) - set(DEFAULTS)
    # The choices that matter in production are stated, not left to defaults.
    assert {"AUTH_USERNAME", "AUTH_PASSWORD", "DATABASE_URL", "LOAD_SAMPLE_ORDERS"} <= set(environment)
    settings = load_settings({key: resolve(value) for key, value in environment.items()})
    assert settings.auth_enabled and not settings.load_sample_orders
    assert settings.port == SYSTEM["docker"]["port"]


def test_the_limits_are_stated_and_are_sesams_defaults():
    """What every measurement of the service at Sesam's limits assumes (tests/bench)."""
    assert (SYSTEM["docker"]["memory"], SYSTEM["docker"]["cpu_quota"]) == (128, 25)


def test_in_production_the_store_lives_outside_the_container():
    """A microservice's container has no persistent disk and is recreated on every config
    change and image pull: a store inside it would lose every order each time."""
    database_url = SYSTEM["docker"]["environment"]["DATABASE_URL"]
    assert SECRET.match(database_url), "the database URL carries a password: a secret"
    assert load_settings({"DATABASE_URL": resolve(database_url)}).database_url.startswith("postgresql://")
    text = (CONFIG / "systems" / "orders-source.conf.json").read_text()
    assert "sqlite" not in text.lower() and "/data" not in text
    assert resolve(SYSTEM["docker"]["environment"]["LOAD_SAMPLE_ORDERS"]) == "false"


def test_the_credentials_the_service_checks_are_the_ones_sesam_sends():
    environment = SYSTEM["docker"]["environment"]
    assert SYSTEM["authentication"] == "basic"
    assert SYSTEM["username"] == environment["AUTH_USERNAME"]
    assert SYSTEM["password"] == environment["AUTH_PASSWORD"]
    assert SECRET.match(SYSTEM["username"]) and SECRET.match(SYSTEM["password"])


def test_no_secret_value_appears_literally_anywhere_in_the_config():
    def walk(value, key=""):
        if isinstance(value, dict):
            for name, item in value.items():
                if name != "entities":  # order data (its "Username" is a customer, not a login)
                    yield from walk(item, name)
        elif isinstance(value, list):
            for item in value:
                yield from walk(item, key)
        else:
            yield key, value

    for path in [*CONFIG.rglob("*.conf.json"), CONFIG / "test-env.json", CONFIG / "prod-env.json"]:
        for key, value in walk(load(path)):
            if re.search(r"password|secret|token|username|api_?key", key, re.IGNORECASE):
                assert isinstance(value, str) and SECRET.match(value), f"{path.name}: {key}"
        text = path.read_text()
        assert not re.search(r"eyJ[A-Za-z0-9_-]{10,}", text), f"{path.name} holds a JWT"
        assert "$SECRET" not in text or path.parent.name == "systems", \
            f"{path.name}: $SECRET works only in system configs"


def test_the_pipe_collects_incrementally_with_paging_and_guards_against_empty_runs():
    assert SOURCE["type"] == "json"
    assert SOURCE["supports_since"] and SOURCE["is_chronological"] and SOURCE["is_since_comparable"]
    assert SOURCE["page_size"] >= 1 and SOURCE["if_source_empty"] == "fail"
    assert COLLECT["pump"]["cron_expression"] and COLLECT["pump"]["rescan_cron_expression"]


def test_the_pipe_resets_itself_when_the_store_behind_it_is_recreated_or_restored():
    """The service sends X-Dataset-Generation and the restore headers (tests of store
    identity); without automatic reprocessing Sesam would only note them."""
    assert COLLECT["reprocessing_policy"] == "automatic"


def test_the_generated_test_data_has_not_drifted_from_the_code():
    for path, text in sesam_config.render().items():
        assert path.read_text() == text, f"{path.name} drifted: run `make sesam-config`"
    embedded = COLLECT["source"]["alternatives"]["test"]
    assert embedded["type"] == "embedded" and len(embedded["entities"]) == 3


def test_sesam_test_has_what_it_needs():
    test_env = load(CONFIG / "test-env.json")
    assert test_env["node-env"] == "test"
    assert COLLECT["source"]["type"] == "conditional" and COLLECT["source"]["condition"] == "$ENV(node-env)"
    assert set(COLLECT["source"]["alternatives"]) == {"prod", "test"}
    assert load(CONFIG / "node-metadata.conf.json")["type"] == "metadata"
    endpoint = load(CONFIG / "pipes" / "orders-source-order-endpoint.conf.json")
    assert endpoint["source"]["dataset"] == COLLECT["_id"] and endpoint["sink"]["type"] == "http_endpoint"
    spec = load(CONFIG / "expected" / "orders-source-order-endpoint.test.json")
    assert spec["pipe"] == endpoint["_id"] and (CONFIG / "expected" / spec["file"]).exists()


def test_the_checker_passes_through_the_pipes_url_and_finds_every_flag_it_sets_safe(tmp_path):
    """Setting a continuation flag the source does not honour loses data silently: each flag
    the pipe sets to true must be one the source checker finds safe for this service."""
    environment = {key: resolve(value) for key, value in SYSTEM["docker"]["environment"].items()}
    environment["DATABASE_URL"] = f"sqlite:///{tmp_path}/orders.sqlite3"  # not the container's /data
    server = start_gunicorn(environment.pop("DATABASE_URL"), tmp_path, **environment)
    try:
        # Sesam calls http://<system _id>:<docker.port>/<url>; here the host is loopback
        # and the port a free one, the path and the credentials exactly the config's.
        url = f"{server.url}/{SOURCE['url']}"
        result = subprocess.run(
            [sys.executable, "-m", "tests.source_checker", url, "--allow-writes", "--strict"],
            cwd=ROOT, env={**os.environ, "URL_USER": resolve(SYSTEM["username"]),
                           "URL_PASSWORD": resolve(SYSTEM["password"])},
            capture_output=True, text=True, timeout=300, check=False)
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout[-3000:]
    settings = result.stdout.partition("can be given:")[2]
    safe = dict(re.findall(r"^  (\w+): +(\S+)", settings, re.MULTILINE))
    flags = ["supports_since", "is_chronological", "is_since_comparable", "page_size"]
    assert set(safe) == set(flags)
    for flag in flags:
        if SOURCE.get(flag):
            assert safe[flag] != "false" and safe[flag] != "leave", f"{flag}: {result.stdout[-1500:]}"
