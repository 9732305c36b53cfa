# Orders entity source for Sesam. Build: make build; test the image: make test-image.

# ---- build stage: a virtual environment with the pinned runtime dependencies
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY service/requirements.txt /tmp/requirements.txt
# pip compiles what it installs: workers load bytecode instead of compiling at every start.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install -r /tmp/requirements.txt

# ---- runtime stage: the venv and the service code, nothing else
FROM python:3.11.14-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=2 \
    PATH=/opt/venv/bin:$PATH \
    DATABASE_URL=sqlite:////data/orders.sqlite3

# Every other setting has its default in service/config.py; DATABASE_URL differs only in
# its absolute path, to the one folder the image's user may write.
# PYTHONDONTWRITEBYTECODE: the bytecode is compiled at build time (below); the code is not
# the user's to write to, so nothing is written at run time.
# MALLOC_ARENA_MAX: glibc gives every thread its own malloc arena; with gthread workers
# that fragments memory for nothing. Two arenas keep a worker small inside 128 MB.

# A fixed, non-root user; /data (the SQLite file) is the only place it can write.
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin app \
 && mkdir /data && chown 10001:10001 /data

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY service/ /app/service/
RUN python -m compileall -q /app/service

USER 10001:10001
VOLUME ["/data"]
EXPOSE 5000
HEALTHCHECK --interval=5s --timeout=4s --start-period=10s --retries=3 \
  CMD ["python", "-m", "service.healthcheck"]
# Exec form: gunicorn is PID 1 and gets SIGTERM itself, so running streams finish.
CMD ["python", "-m", "service", "serve"]
