"""Orders entity source for Sesam: a Flask app (service.app) served by gunicorn.

Nothing is imported here: gunicorn's master imports service.config and service.logs,
and must not pull Flask in with them.
"""
