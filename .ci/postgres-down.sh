#!/usr/bin/env bash
# Stop a cluster the postgresql package may have started (the tests start their own).
read -r PG_VERSION PG_CLUSTER _ < <(pg_lsclusters --no-header 2>/dev/null | head -1) || exit 0
[ -n "${PG_VERSION:-}" ] && pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" stop 2>/dev/null || true
