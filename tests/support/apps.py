"""The app in process, prepared as a start of the service prepares it."""
from __future__ import annotations

from flask import Flask

from service.app import create_app
from service.config import Settings, load_settings
from service.store import open_store
from service.store.prepare import prepare_store


def prepared_app(settings: Settings | dict[str, str]) -> Flask:
    """create_app on a store that was migrated (and given the samples, when asked) first."""
    if isinstance(settings, dict):
        settings = load_settings(settings)
    store = open_store(settings.database_url)
    prepare_store(store, settings)
    return create_app(settings, store)
