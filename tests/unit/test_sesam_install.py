"""Installing the bundled config into a Sesam node loses no data (issue 15): production
and test variables kept apart, retries matched to the service, cron expressions in the
documented form, and schemas that accept what Sesam documents but catch a misspelt name."""
from __future__ import annotations

import json
import re

import jsonschema
import pytest

from service.store import StoreUnavailable
from tests.support.servers import ROOT

CONFIG = ROOT / "sesam-config"
SCHEMAS = CONFIG / "schemas"


def load(path):
    return json.loads(path.read_text())


SYSTEM = load(CONFIG / "systems" / "orders-source.conf.json")
COLLECT = load(CONFIG / "pipes" / "orders-source-order-collect.conf.json")
PIPES = [load(path) for path in sorted((CONFIG / "pipes").glob("*.conf.json"))]
PROFILES = {"prod": load(CONFIG / "prod-env.json"), "test": load(CONFIG / "test-env.json")}


def selected_source(node_env: str | None) -> dict | None:
    """What the collect pipe reads for a value of node-env: the conditional source picks
    the alternative named exactly by the value, and no other."""
    source = COLLECT["source"]
    assert source["type"] == "conditional" and source["condition"] == "$ENV(node-env)"
    return source["alternatives"].get(node_env) if node_env is not None else None


@pytest.mark.parametrize("node_env, expected", [
    ("prod", "json"), ("test", "embedded"),
    (None, None), ("", None), ("production", None), ("Test", None), ("TEST", None),
    ("test ", None), ("dev", None), ("default", None), ("*", None),
])
def test_only_the_exact_value_test_selects_the_test_data(node_env, expected):
    chosen = selected_source(node_env)
    assert (chosen or {}).get("type") == expected


def test_a_production_upload_sets_prod_and_carries_no_test_variables():
    prod, test = PROFILES["prod"], PROFILES["test"]
    assert prod["node-env"] == "prod" and test["node-env"] == "test"
    assert "test" not in json.dumps(prod).lower()
    # Each profile defines every variable the config refers to, so an upload never
    # leaves node-env (or another variable) to whatever the node had before.
    used = set()
    for path in CONFIG.rglob("*.conf.json"):
        used |= set(re.findall(r"\$ENV\(([a-z0-9-]+)\)", path.read_text()))
    assert used == set(prod) == set(test)


def test_the_node_metadata_sets_nothing_undocumented_that_the_cli_overwrites():
    assert load(CONFIG / "node-metadata.conf.json") == {"_id": "node", "type": "metadata"}


def test_reads_are_retried_as_the_service_asks_and_out_of_sync_is_not(make_app, monkeypatch):
    app = make_app()
    monkeypatch.setattr(app.extensions["store"], "open_changes",
                        lambda since, limit: (_ for _ in ()).throw(StoreUnavailable("down")))
    response = app.test_client().get("/api/orders")
    assert response.status_code == 503
    strategy = SYSTEM["retry_strategy"]
    assert strategy["503"]["read_retry_delay"] == int(response.headers["Retry-After"])
    # A minute of retries rides out a restart of the container or of the database.
    assert strategy["503"]["max_read_retries"] * strategy["503"]["read_retry_delay"] >= 60
    # 4xx (bad request, auth, the 409 of a store recreated) retried would only fail later.
    assert not [code for code in strategy if code == "default" or code.startswith("4")]
    assert not [pipe for pipe in PIPES if "max_read_retries" in pipe.get("pump", {})]  # would win


# --- cron expressions, by the rules of docs.sesam.io "Cron expressions" (5 fields, UTC;
# day-of-week 0-6 or SUN-SAT, but its examples count days the Quartz way, so a number is
# ambiguous and only a name is taken; `?` in day-of-month when day-of-week is set; W and
# # are not supported). The docs also allow a sixth field; we ship five.
NAMES = {"month": ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
         "day_of_week": ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]}
FIELDS = [("minute", 0, 59), ("hour", 0, 23), ("day_of_month", 1, 31), ("month", 1, 12),
          ("day_of_week", None, None)]


def parse_cron(expression: str) -> dict[str, str]:
    """Return the fields of a 5-field cron expression, or raise ValueError saying why not."""
    parts = expression.split(" ")
    if len(parts) != 5:
        raise ValueError(f"{expression!r}: 5 fields separated by single spaces")
    fields = dict(zip([name for name, _, _ in FIELDS], parts))
    for (name, low, high), text in zip(FIELDS, parts):
        if re.search(r"[W#]", text):
            raise ValueError(f"{name}: W and # are not supported")
        if text == "?":
            if name not in ("day_of_month", "day_of_week"):
                raise ValueError(f"{name}: ? only in day-of-month or day-of-week")
            continue
        for item in text.split(","):
            _parse_item(name, item, low, high)
    if fields["day_of_week"] not in ("*", "?") and fields["day_of_month"] != "?":
        raise ValueError("with a day-of-week, day-of-month must be ?")
    if fields["day_of_month"] == fields["day_of_week"] == "?":
        raise ValueError("? in day-of-month and day-of-week both")
    return fields


def _parse_item(name: str, item: str, low: int | None, high: int | None) -> None:
    span, _, step = item.partition("/")
    if step and not (step.isdigit() and int(step) > 0):
        raise ValueError(f"{name}: bad step {step!r}")
    if span == "*":
        return
    if name == "day_of_month" and span == "L":
        return
    for value in span.split("-", 1):
        if name == "day_of_week":
            if value.removesuffix("L") not in NAMES["day_of_week"]:
                raise ValueError(f"day_of_week: {value!r} (give a name: a number is ambiguous)")
        elif name == "month" and value in NAMES["month"]:
            continue
        elif not (value.isdigit() and low <= int(value) <= high):
            raise ValueError(f"{name}: {value!r} is not in {low}-{high}")


def cron_expressions():
    for pipe in PIPES:
        for key, value in pipe.get("pump", {}).items():
            if key.endswith("cron_expression"):
                yield f"{pipe['_id']}.{key}", value
    if "pull_image_cron_expression" in SYSTEM["docker"]:
        yield "system.docker.pull_image_cron_expression", SYSTEM["docker"]["pull_image_cron_expression"]


@pytest.mark.parametrize("where, expression", list(cron_expressions()))
def test_every_cron_expression_in_the_config_parses_by_the_documented_rules(where, expression):
    parse_cron(expression)


def test_the_weekly_rescan_names_its_day():
    assert parse_cron(COLLECT["pump"]["rescan_cron_expression"])["day_of_week"] == "SUN"


@pytest.mark.parametrize("expression", [
    "0 3 * * 0", "0 3 ? * 7", "61 * * * *", "0 24 * * *", "0 3 15W * ?", "0 3 ? * MON#1",
    "* * * *", "0 3 1 * SUN", "0 3 ? * ?", "*/0 * * * *", "0 3 ? * SUNDAY", "0  3 * * *",
])
def test_the_cron_rules_refuse_what_sesam_does_not_document(expression):
    with pytest.raises(ValueError):
        parse_cron(expression)


@pytest.mark.parametrize("expression", ["*/5 * * * *", "0 3 ? * SUN", "0 0 * * *", "15 2 L * ?",
                                        "0 6 ? JAN-MAR MON-FRI", "0 23 ? * FRIL"])
def test_the_cron_rules_take_documented_forms(expression):
    parse_cron(expression)


# --- schemas: every documented property accepted, a misspelt one refused. The values are
# those of the documented prototypes (docs.sesam.io: Microservice system, Pumps, Pipes).
DOCUMENTED_SYSTEM = {
    "name": "Name of microservice", "description": ["a list", "of lines"], "comment": "a comment",
    "use_https": False, "verify_ssl": False, "eager_load": True,
    "authentication": "basic", "connect_timeout": 60, "read_timeout": 1800,
    "retry_strategy": {"default": {"max_read_retries": 3, "read_retry_delay": 10}},
}
DOCUMENTED_DOCKER = {
    "username": None, "password": None, "memory": 128, "cpu_quota": 25, "cpu_period": 100,
    "cpuset_cpus": None, "environment": {"OTHER-VARIABLE": {"key1": "value1"}},
    "hosts": {"myhost1.mydomain.io": "157.240.20.34"}, "skip_pull": False,
    "pull_image_cron_expression": "0 0 * * *",
}
DOCUMENTED_PIPE = {"name": "Name of pipe", "description": ["line one", "line two"],
                   "comment": "This is a comment", "batch_size": 100, "metadata": {},
                   "reprocessing_policy": "automatic"}
DOCUMENTED_PUMP = {
    "comment": "This is a comment", "rescan_run_count": 10, "partial_rescan_run_count": 5,
    "partial_rescan_delta": 3600, "run_at_startup": False, "run_at_startup_if_not_populated": False,
    "max_read_retries": 0, "read_retry_delay": 0, "write_retry_delay": 0,
    "max_retries_per_entity": 5, "max_consecutive_write_errors": 1,
    "max_write_errors_in_retry_dataset": 0, "fallback_to_single_entities_on_batch_fail": True,
    "dead_letter_dataset": "some-dataset-id", "track_dead_letters": False, "mode": "scheduled",
    "log_events_noop_runs": False, "log_events_noop_runs_changes_only": True,
    "notification_granularity": 99999,
}


DOCUMENTED_JSON_SOURCE = {  # docs.sesam.io: JSON source, and Sources for `comment`
    "supports_signalling": False, "subset": ["eq", "_S.category", "tank"],
    "headers": {"some-header": "some-value"}, "initial_since_value": 0,
    "comment": ["a comment", "on two lines"], "name": "orders source",
}


DOCUMENTED_DATASET_SOURCE = {  # docs.sesam.io: Dataset source
    "subset": ["eq", "_S.category", "tank"], "completeness": True,
    "include_previous_versions": False, "include_replaced": True, "supports_signalling": False,
}
ENDPOINT = load(CONFIG / "pipes" / "orders-source-order-endpoint.conf.json")


def validate_system(system):
    jsonschema.validate(system, load(SCHEMAS / "system-microservice.schema.json"))


def validate_pipe(pipe):
    jsonschema.validate(pipe, load(SCHEMAS / "pipe.schema.json"))


@pytest.mark.parametrize("name", DOCUMENTED_SYSTEM)
def test_the_system_schema_takes_each_documented_property(name):
    validate_system({**SYSTEM, name: DOCUMENTED_SYSTEM[name]})


@pytest.mark.parametrize("name", DOCUMENTED_DOCKER)
def test_the_system_schema_takes_each_documented_docker_property(name):
    validate_system({**SYSTEM, "docker": {**SYSTEM["docker"], name: DOCUMENTED_DOCKER[name]}})


@pytest.mark.parametrize("name", DOCUMENTED_PIPE)
def test_the_pipe_schema_takes_each_documented_property(name):
    validate_pipe({**COLLECT, name: DOCUMENTED_PIPE[name]})


@pytest.mark.parametrize("name", DOCUMENTED_PUMP)
def test_the_pipe_schema_takes_each_documented_pump_property(name):
    validate_pipe({**COLLECT, "pump": {**COLLECT["pump"], name: DOCUMENTED_PUMP[name]}})


@pytest.mark.parametrize("name", DOCUMENTED_JSON_SOURCE)
def test_the_pipe_schema_takes_each_documented_json_source_property(name):
    source = COLLECT["source"]
    prod = {**source["alternatives"]["prod"], name: DOCUMENTED_JSON_SOURCE[name]}
    validate_pipe({**COLLECT, "source": {**source, "alternatives": {**source["alternatives"], "prod": prod}}})


@pytest.mark.parametrize("name", DOCUMENTED_DATASET_SOURCE)
def test_the_pipe_schema_takes_each_documented_dataset_source_property(name):
    validate_pipe({**ENDPOINT, "source": {**ENDPOINT["source"], name: DOCUMENTED_DATASET_SOURCE[name]}})


@pytest.mark.parametrize("where, name", [
    ("system", "retry_stratgy"), ("system", "useHttps"), ("docker", "memroy"), ("docker", "host"),
    ("pipe", "reprocesing_policy"), ("pipe", "batchsize"), ("pump", "max_read_retry"),
    ("pump", "cron"), ("retry", "max_retries"), ("dataset_source", "include_replace"),
])
def test_a_misspelt_property_is_refused(where, name):
    if where == "system":
        config, validate = {**SYSTEM, name: True}, validate_system
    elif where == "docker":
        config, validate = {**SYSTEM, "docker": {**SYSTEM["docker"], name: 1}}, validate_system
    elif where == "retry":
        config, validate = {**SYSTEM, "retry_strategy": {"503": {name: 3}}}, validate_system
    elif where == "pipe":
        config, validate = {**COLLECT, name: 1}, validate_pipe
    elif where == "dataset_source":
        config, validate = {**ENDPOINT, "source": {**ENDPOINT["source"], name: True}}, validate_pipe
    else:
        config, validate = {**COLLECT, "pump": {**COLLECT["pump"], name: 1}}, validate_pipe
    with pytest.raises(jsonschema.ValidationError):
        validate(config)
