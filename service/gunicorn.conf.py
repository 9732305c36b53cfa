"""gunicorn settings for the orders service: `gunicorn -c service/gunicorn.conf.py`.

Every value comes from the validated settings (service/config.py), so the server and
the app can never disagree about the port, the workers or the log level.
"""
import os
import sys

from service.config import ConfigError, check_can_serve, load_settings

try:
    _settings = load_settings()
    check_can_serve(_settings)
except ConfigError as error:
    sys.exit(f"configuration error: {error}")

# The app: a factory-built Flask app; each worker builds its own store connections
# (no preload: SQLite and PostgreSQL connections must not cross a fork).
wsgi_app = "service.wsgi:app"

# Where to listen.
bind = f"{_settings.host}:{_settings.port}"

# Workers: gthread, because a full sync is one long streamed response; a sync worker
# would be killed after `timeout` and would block on one stream. The worker count comes
# from the environment, not cpu_count(): a container sees all of the host's cores.
worker_class = "service.gunicorn_worker.StopListeningThreadWorker"  # gthread, see there
workers = _settings.workers
threads = _settings.threads
# gthread's `timeout` is a heartbeat of the worker's main loop, not a request limit.
timeout = 30
keepalive = 5

# Shutdown: on SIGTERM the workers stop accepting and let running streams finish.
graceful_timeout = _settings.graceful_timeout

# Logs: JSON on stdout. The app writes the request lines itself (with the request id
# and the number of entities served), so gunicorn's access log stays off: with a
# logconfig, gunicorn would still build its access-log fields for every request.
accesslog = None
logger_class = "service.gunicorn_logger.AppLogsRequests"
loglevel = _settings.log_level.lower()
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "service.logs.JsonFormatter"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json",
                            "stream": "ext://sys.stdout"}},
    "root": {"level": _settings.log_level, "handlers": ["stdout"]},
    "loggers": {
        "gunicorn.error": {"level": _settings.log_level, "handlers": ["stdout"], "propagate": False},
        "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
    },
}

# Containers: heartbeat files on tmpfs; no control socket (it wants a writable $HOME).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
control_socket_disable = True


# The store is prepared once per start, before any worker starts, so workers never race
# to create a new database. In a child process: the master only supervises, and importing
# Flask and a database driver would add 10-25 MB to it for good.
PREPARE = [sys.executable, "-m", "service", "prepare"]
PREPARE_RETRY_S = 5  # service/prepare.py says so in its log line


def on_starting(server):
    """Prepare the store. If its database is unavailable now, the workers start anyway
    (they answer 503 and an unhealthy /health) and the master tries again every few
    seconds until the store is ready, so the service recovers without a restart. A
    database whose schema a newer release made, and that does not allow this code, stops
    the service (the prepare step logs both versions)."""
    import itertools
    import signal
    import subprocess
    import threading
    import time

    code = subprocess.run(PREPARE, check=False).returncode
    if code == os.EX_CONFIG:  # a database this code cannot serve: do not start
        raise SystemExit(code)
    if code != os.EX_TEMPFAIL:
        return

    def retry():
        for attempt in itertools.count(1):
            time.sleep(PREPARE_RETRY_S)
            code = subprocess.run(PREPARE, check=False,
                                  env={**os.environ, "PREPARE_ATTEMPT": str(attempt)}).returncode
            if code == os.EX_CONFIG:  # reachable at last, and not servable: stop
                os.kill(os.getpid(), signal.SIGTERM)
                return
            if code != os.EX_TEMPFAIL:
                server.log.info("the store is prepared")
                return

    threading.Thread(target=retry, name="prepare-store", daemon=True).start()
