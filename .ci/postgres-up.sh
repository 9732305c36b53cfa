#!/usr/bin/env bash
# Give this machine a running PostgreSQL with a test role and database, for the tests.
# Source it: it exports TEST_POSTGRES_URL. Stop with: bash .ci/postgres-down.sh
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if ! command -v pg_lsclusters >/dev/null; then
  echo "== installing postgresql"
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
read -r PG_VERSION PG_CLUSTER _ < <(pg_lsclusters --no-header | head -1)
if ! pg_lsclusters --no-header | head -1 | grep -q online; then
  echo "== starting PostgreSQL $PG_VERSION/$PG_CLUSTER"
  pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start
fi
PG_PORT="$(pg_lsclusters --no-header | head -1 | awk '{print $3}')"
# A password role reached over 127.0.0.1: the postgres OS user cannot run our venv.
su postgres -c "psql -p $PG_PORT -qtAc \"SELECT 1 FROM pg_roles WHERE rolname = 'orders'\"" | grep -q 1 \
  || su postgres -c "psql -p $PG_PORT -qc \"CREATE ROLE orders LOGIN PASSWORD 'orders-test'\""
su postgres -c "psql -p $PG_PORT -qtAc \"SELECT 1 FROM pg_database WHERE datname = 'orders_test'\"" | grep -q 1 \
  || su postgres -c "psql -p $PG_PORT -qc 'CREATE DATABASE orders_test OWNER orders'"
export TEST_POSTGRES_URL="postgresql://orders:orders-test@127.0.0.1:$PG_PORT/orders_test"
echo "== PostgreSQL ready: $PG_VERSION/$PG_CLUSTER on port $PG_PORT"
