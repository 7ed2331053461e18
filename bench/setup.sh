#!/usr/bin/env bash
# Installs what the bench suite needs beyond the build's packages: Redis and hiredis (the Redis
# peers), gnuplot (the plots) and redis-py (the Python bench's peer). Idempotent.
set -euo pipefail
# bench/django/ (Django's session backends under gunicorn) adds django-redis, the cache backend's.
"$(dirname "$0")/../scripts/setup.sh" python3-django python3-django-redis gunicorn
exec "$(dirname "$0")/../scripts/setup.sh" redis-server libhiredis-dev gnuplot-nox python3-redis
