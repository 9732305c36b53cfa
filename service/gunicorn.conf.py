"""gunicorn settings for the orders service: `gunicorn -c service/gunicorn.conf.py`.

Every value comes from the validated settings (service/config.py), so the server and
the app can never disagree about the port, the workers or the log level.
"""
import os
import sys

from service.config import ConfigError, load_settings

try:
    _settings = load_settings()
except ConfigError as error:
    sys.exit(f"configuration error: {error}")

# The app: a factory-built Flask app; each worker builds its own store connections
# (no preload: SQLite and PostgreSQL connections must not cross a fork). Each worker
# also migrates the schema on start (MIGRATE_ON_START): migrations take a lock and are
# idempotent, and the master stays lean: it never imports Flask or a database driver,
# which would add 10-25 MB to the process that only supervises the workers.
wsgi_app = "service.wsgi:app"

# Where to listen.
bind = f"{_settings.host}:{_settings.port}"

# Workers: gthread, because a full sync is one long streamed response; a sync worker
# would be killed after `timeout` and would block on one stream. The worker count comes
# from the environment, not cpu_count(): a container sees all of the host's cores.
worker_class = "gthread"
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


def post_worker_init(worker):
    """On SIGTERM, stop listening at once, then let gunicorn finish the running requests.

    gunicorn's graceful stop only stops accepting: new connections still queue in the
    listening socket's backlog and are reset when the worker exits. Shutting the shared
    listening socket down makes the kernel refuse them straight away, so a client (or a
    load balancer) learns immediately that it must go elsewhere."""
    import signal
    import socket

    previous = signal.getsignal(signal.SIGTERM)

    def stop_listening(signum, frame):
        for listener in worker.sockets:
            try:
                listener.shutdown(socket.SHUT_RD)
            except OSError:
                pass
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, stop_listening)
