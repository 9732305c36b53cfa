"""gunicorn's logger, minus its access log: the app logs each request itself (access_log.py)."""
from gunicorn.glogging import Logger


class AppLogsRequests(Logger):
    def access(self, resp, req, environ, request_time) -> None:
        """Nothing to do: gunicorn would otherwise format its access fields for every
        request whenever a logconfig is set, only for the line to be dropped."""
