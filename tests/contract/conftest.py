"""Targets for the contract suite.

By default the suite runs against the in-process app and against a real gunicorn process
on a free port, each on SQLite and on PostgreSQL, all with Basic auth configured. With --service-url it runs only
against that URL (a deployed container, or any other Sesam JSON source):

    pytest tests/contract --service-url http://host:5000/api/orders \\
        --service-user sesam --service-password ... [--allow-writes]
"""
from __future__ import annotations

import os

import pytest

from tests.support.apps import prepared_app
from tests.support.databases import BACKENDS, fresh_database
from tests.support.servers import start_gunicorn
from tests.contract.seeding import REMOTE_SEED_BASE, SEED_IDS, seed
from tests.support.targets import Target, flask_target, http_target

USER, PASSWORD = "contract-user", "contract-password-not-secret"


def pytest_generate_tests(metafunc):
    if "target" in metafunc.fixturenames:
        names = ["url"] if metafunc.config.getoption("service_url") else \
            [f"{kind}-{backend}" for kind in ("app", "gunicorn") for backend in BACKENDS]
        metafunc.parametrize("target", names, indirect=True, scope="session")


@pytest.fixture(scope="session")
def target(request, tmp_path_factory) -> Target:
    config = request.config
    if request.param == "url":
        password = config.getoption("service_password") or os.environ.get("SERVICE_PASSWORD")
        target = http_target("url", config.getoption("service_url"),
                             config.getoption("service_user"), password,
                             writable=config.getoption("allow_writes"))
        seed(target, [REMOTE_SEED_BASE + i for i in SEED_IDS])
        return target
    kind, backend = request.param.split("-")
    folder = tmp_path_factory.mktemp(request.param)
    database = fresh_database(backend, folder)
    database_url = database.__enter__()
    request.addfinalizer(lambda: database.__exit__(None, None, None))
    env = {"AUTH_USERNAME": USER, "AUTH_PASSWORD": PASSWORD}
    if kind == "app":
        app = prepared_app({"DATABASE_URL": database_url, **env})
        request.addfinalizer(app.extensions["store"].close)
        target = flask_target(app.test_client(), USER, PASSWORD)
    else:
        server = start_gunicorn(database_url, folder, **env)
        request.addfinalizer(server.stop)
        target = http_target("gunicorn", f"{server.url}/api/orders", USER, PASSWORD, writable=True)
    seed(target, list(SEED_IDS))
    return target


@pytest.fixture
def writable(target) -> Target:
    if target.write is None:
        pytest.skip(f"target {target.name!r} has no write API the suite may use "
                    "(give --allow-writes for a target with this service's order API)")
    return target


@pytest.fixture
def full(target) -> list[dict]:
    """One full read of the target."""
    return target.pull()
