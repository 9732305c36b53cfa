"""The app in process, prepared as a start of the service prepares it."""
from __future__ import annotations

from flask import Flask

from service.app import create_app
from service.config import Settings, load_settings
from service.store import open_store
from service.prepare import prepare_store


def prepared_app(settings: Settings | dict[str, str]) -> Flask:
    """create_app on a store that was migrated (and given the samples, when asked) first."""
    if isinstance(settings, dict):
        settings = load_settings(settings)
    store = open_store(settings.database_url)
    prepare_store(store, settings)
    return create_app(settings, store)


def client_transport(client):
    """The emulator's transport over an app's test client: a pipe without a server."""
    from tests.sesam_emulator import Reply, with_params

    def get(path: str, params: dict) -> Reply:
        response = client.get(with_params(path, params))
        body = response.data
        headers = {name.lower(): value for name, value in response.headers.items()}
        response.close()  # runs the close callbacks, as a WSGI server does
        return Reply(response.status_code, response.mimetype, body, headers)
    return get
