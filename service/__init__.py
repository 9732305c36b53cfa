"""Orders entity source for Sesam: a Flask app served by gunicorn."""
from .app import create_app

__all__ = ["create_app"]
