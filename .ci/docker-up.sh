#!/usr/bin/env bash
# Give this machine a Docker engine, a local registry and the Dockerfile's base image,
# offline (see shared/docs/machine.md). Source it: it exports DOCKER_HOST and REGISTRY.
#
#   source .ci/docker-up.sh   ...   bash .ci/docker-down.sh
#
# Everything lives under $DOCKER_WORK (default /tmp/orders-docker); both daemons are
# stopped by PID. Nothing listens beyond 127.0.0.1, and dockerd adds no bridge or
# firewall rules (--bridge=none): builds and containers use the host network.
set -euo pipefail
DOCKER_WORK="${DOCKER_WORK:-/tmp/orders-docker}"
REGISTRY="${REGISTRY:-127.0.0.1:5000}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$DOCKER_WORK"
export DEBIAN_FRONTEND=noninteractive

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v skopeo >/dev/null || need+=(skopeo)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

export DOCKER_HOST="unix://$DOCKER_WORK/docker.sock"
if ! docker info >/dev/null 2>&1; then
  echo "== starting dockerd"
  dockerd --host "$DOCKER_HOST" --data-root "$DOCKER_WORK/data" --exec-root "$DOCKER_WORK/exec" \
    --pidfile "$DOCKER_WORK/dockerd.pid" --bridge=none --iptables=false \
    >"$DOCKER_WORK/dockerd.log" 2>&1 &
  for _ in $(seq 100); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
  docker info >/dev/null 2>&1 || { cat "$DOCKER_WORK/dockerd.log"; echo "dockerd did not start" >&2; exit 1; }
fi

if ! curl -fs "http://$REGISTRY/v2/" >/dev/null 2>&1; then
  echo "== starting a registry on $REGISTRY"
  cat >"$DOCKER_WORK/registry.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $DOCKER_WORK/registry
http:
  addr: $REGISTRY
YAML
  docker-registry serve "$DOCKER_WORK/registry.yml" >"$DOCKER_WORK/registry.log" 2>&1 &
  echo $! >"$DOCKER_WORK/registry.pid"
  for _ in $(seq 50); do curl -fs "http://$REGISTRY/v2/" >/dev/null 2>&1 && break; sleep 0.2; done
  curl -fs "http://$REGISTRY/v2/" >/dev/null || { cat "$DOCKER_WORK/registry.log"; exit 1; }
fi

# The base image named in the Dockerfile's FROM: pulled where a registry can be reached,
# else a stand-in built from Debian packages and tagged with the same name.
BASE="$(awk '/^FROM /{print $2; exit}' "$ROOT/Dockerfile")"
if ! docker image inspect "$BASE" >/dev/null 2>&1 && ! docker pull -q "$BASE" >/dev/null 2>&1; then
  echo "== building a stand-in for $BASE (no registry reachable)"
  if ! docker image inspect localhost/debian-base:bookworm >/dev/null 2>&1; then
    rm -rf "$DOCKER_WORK/rootfs"
    debootstrap --variant=minbase bookworm "$DOCKER_WORK/rootfs" http://deb.debian.org/debian >/dev/null
    tar -C "$DOCKER_WORK/rootfs" --numeric-owner -cf "$DOCKER_WORK/base.tar" .
    docker import "$DOCKER_WORK/base.tar" localhost/debian-base:bookworm >/dev/null
    rm -rf "$DOCKER_WORK/rootfs" "$DOCKER_WORK/base.tar"
  fi
  mkdir -p "$DOCKER_WORK/standin"
  cp "$ROOT/.ci/standin-base.Dockerfile" "$DOCKER_WORK/standin/Dockerfile"
  cp /etc/ssl/certs/ca-certificates.crt "$DOCKER_WORK/standin/ca-certificates.crt"
  docker build -q --network host -t "$BASE" --build-arg CA_BUNDLE=ca-certificates.crt \
    "$DOCKER_WORK/standin" >/dev/null 2>"$DOCKER_WORK/standin.err" \
    || { cat "$DOCKER_WORK/standin.err"; exit 1; }
fi
export REGISTRY
echo "== docker ready: DOCKER_HOST=$DOCKER_HOST REGISTRY=$REGISTRY base=$BASE"
