"""The WSGI entry point gunicorn loads (see gunicorn.conf.py), with the feed's periodic
verification in each worker (store/verify.py: one run at a time across all of them)."""
from .app import create_app
from .verifying import start_periodic_verification

app = create_app()
start_periodic_verification(app.extensions["store"], app.extensions["settings"].verify_interval_s)
