"""The WSGI entry point gunicorn loads (see gunicorn.conf.py)."""
from .app import create_app

app = create_app()
