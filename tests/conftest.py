"""Shared fixtures: an app on a fresh temporary database, its client and its store."""
from __future__ import annotations

import pytest

from service.app import create_app
from service.config import load_settings


@pytest.fixture
def database_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/orders.sqlite3"


@pytest.fixture
def make_app(database_url):
    """Build an app with settings from a dict of environment variables."""
    def make(**env: str):
        settings = load_settings({"DATABASE_URL": database_url, "LOG_LEVEL": "DEBUG", **env})
        app = create_app(settings)
        app.config["TESTING"] = True
        return app
    return make


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def store(app):
    return app.extensions["store"]
