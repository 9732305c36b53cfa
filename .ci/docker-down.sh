#!/usr/bin/env bash
# Stop what docker-up.sh started, by PID.
DOCKER_WORK="${DOCKER_WORK:-/tmp/orders-docker}"
for name in registry dockerd; do
  if [ -f "$DOCKER_WORK/$name.pid" ]; then
    kill "$(cat "$DOCKER_WORK/$name.pid")" 2>/dev/null || true
    rm -f "$DOCKER_WORK/$name.pid"
  fi
done
