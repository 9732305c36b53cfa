"""The WSGI entry point gunicorn loads (see gunicorn.conf.py), with the feed's periodic
verification in each worker (store/verify.py: one run at a time across all of them)."""
from .app import create_app
from .config import check_can_serve, load_settings
from .verifying import start_periodic_verification

_settings = load_settings()
check_can_serve(_settings)  # also when gunicorn is started without our config
app = create_app(_settings)
start_periodic_verification(app.extensions["store"], app.extensions["settings"].verify_interval_s)
