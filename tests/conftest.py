"""Shared fixtures: an app on a fresh temporary database, its client and its store."""
from __future__ import annotations

import os

import pytest
from hypothesis import settings

from tests.support.apps import prepared_app
from service.config import load_settings
from service.store import open_store
from tests.support.databases import BACKENDS, fresh_database
from tests.support.postgres_cluster import stop_throwaway


# CI runs the property tests with a fixed seed: a red build then always reproduces.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_sessionfinish(session, exitstatus):
    stop_throwaway()  # the PostgreSQL cluster this run started, if it started one


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def database_url(backend, tmp_path):
    """An empty database of each backend in turn (SQLite, PostgreSQL)."""
    with fresh_database(backend, tmp_path) as url:
        yield url


@pytest.fixture
def any_store(database_url):
    """A migrated store of each backend in turn, without an app."""
    store = open_store(database_url)
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def make_app(database_url):
    """Build an app with settings from a dict of environment variables."""
    stores = []

    def make(**env: str):
        settings = load_settings({"DATABASE_URL": database_url, "LOG_LEVEL": "DEBUG", **env})
        app = prepared_app(settings)
        app.config["TESTING"] = True
        stores.append(app.extensions["store"])  # the one it opened, even if a test swaps it
        return app
    yield make
    for store in stores:
        store.close()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def store(app):
    return app.extensions["store"]


