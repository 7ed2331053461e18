#!/usr/bin/env bash
# Django's session backends (db on SQLite, cache on django-redis, signed cookies) and sessionbroker
# under Debian's gunicorn with 4 sync workers: lost updates on one session, then requests per second
# and CPU per request on many sessions. Prints the tables; raw JSON in DIR/django.json.
#
#   bench/django/run.sh [--quick] [--out DIR] [drive.py options, e.g. --rounds 1 --backends db,sessionbroker]
#
#   --quick   one round with few requests per backend (a smoke test, about 20 s once built)
#   --out     where results go (default bench/results/django): DIR/django.json, DIR/django.md
# Environment: SBBENCH_BUILD_DIR (default build-bench), SBBENCH_JOBS (build jobs, default 2).
#
# Installs what is missing first (scripts/setup.sh, bench/setup.sh: gunicorn, python3-django,
# python3-django-redis, redis-server; root or sudo), builds session-broker and the Python module
# (Release, only those two targets), then runs bench/django/drive.py, which starts and stops
# everything it uses (redis-server on a unix socket with persistence off, session-broker on the
# segment sbbench-django-<pid of run.sh>, gunicorn on 127.0.0.1:<free port>) and removes its temporary
# directory and segment on any exit, Ctrl-C included. Timings are never checked.
set -euo pipefail
cd "$(dirname "$0")/../.."

case "${1:-}" in -h|--help) sed -n '2,17p' "$0"; exit 0 ;; esac
build="${SBBENCH_BUILD_DIR:-build-bench}"
jobs="${SBBENCH_JOBS:-2}"

scripts/setup.sh
bench/setup.sh

echo "== build ($build: session-broker, sessionbroker_python)"
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSESSIONBROKER_BUILD_TESTS=OFF \
    -DSESSIONBROKER_BUILD_BENCH=OFF >/dev/null
else
  cmake -S . -B "$build" >/dev/null  # an existing tree keeps its options (and gains new ones)
fi
if ! grep -qx 'SESSIONBROKER_BUILD_PYTHON:BOOL=ON' "$build/CMakeCache.txt"; then
  echo "$build does not build the Python module (SESSIONBROKER_BUILD_PYTHON; python3-dev)" >&2
  exit 1
fi
grep -q '^CMAKE_BUILD_TYPE:STRING=Release$' "$build/CMakeCache.txt" ||
  echo "note: $build is not a Release build; its figures are not the release's" >&2
cmake --build "$build" -j "$jobs" --target session-broker sessionbroker_python

echo "== Django under gunicorn (bench/django/drive.py)"
# The driver cleans up after itself; this trap covers a driver killed outright (SIGKILL), whose
# broker then cannot remove the segment. A terminal's Ctrl-C reaches both: the driver stops its
# children and cleans up, this shell waits for it.
export SBBENCH_DJANGO_SEGMENT="sbbench-django-$$"
trap 'rm -f "/dev/shm/$SBBENCH_DJANGO_SEGMENT"' EXIT
trap ':' INT  # (a handler, not '': an ignored SIGINT would be inherited by the driver)
/usr/bin/python3 bench/django/drive.py --build "$build" "$@"
