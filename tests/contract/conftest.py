"""Targets for the contract suite: the in-process app and a real gunicorn on a free port,
each on SQLite and on PostgreSQL, all with Basic auth configured. The suite runs the source
checker (tests/source_checker) against each, strictly. Any other source, or a deployed
container, is checked with `make check-source URL=...`.
"""
from __future__ import annotations

import pytest

from tests.source_checker import Report, check
from tests.source_checker.writes import seed
from tests.support.apps import prepared_app
from tests.support.databases import BACKENDS, fresh_database
from tests.support.servers import start_gunicorn
from tests.support.targets import Target, flask_target, http_target

USER, PASSWORD = "contract-user", "contract-password-not-secret"


def pytest_generate_tests(metafunc):
    if "target" in metafunc.fixturenames:
        names = [f"{kind}-{backend}" for kind in ("app", "gunicorn") for backend in BACKENDS]
        metafunc.parametrize("target", names, indirect=True, scope="session")


@pytest.fixture(scope="session")
def target(request, tmp_path_factory) -> Target:
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
    assert seed(target).startswith("wrote 40 orders")
    return target


@pytest.fixture(scope="session")
def report(target) -> Report:
    """The checker's strict report on the target: SHOULD rules count as MUST here."""
    return check(target, strict=True)
