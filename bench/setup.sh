#!/usr/bin/env bash
# Installs what the bench suite needs beyond the build's packages: Redis and hiredis (the Redis
# peers) and gnuplot (the plots). Idempotent.
set -euo pipefail
exec "$(dirname "$0")/../scripts/setup.sh" redis-server libhiredis-dev gnuplot-nox
