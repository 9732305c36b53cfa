"""The service under gunicorn over real HTTP: framing, streaming, faults, load, shutdown."""
