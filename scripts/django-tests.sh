#!/usr/bin/env bash
# Django 3.2's own session tests (SessionTestsMixin, SessionMiddlewareTests of the sessions_tests
# suite in the test tree of Debian's python-django source package), unmodified,
# against sessionbroker.django: fetches that source with `apt-get source` into DIR once, then runs
# python/tests/django_flask/run_django_session_tests.py on it (which starts its own broker).
#   scripts/django-tests.sh DIR        # ctest (Python.django_suite): DIR = <build>/django-src,
#                                      # PYTHONPATH and SESSIONBROKER_BROKER set by ctest
# When apt has no deb-src entry, it writes one derived from the machine's own apt sources
# (scripts/lib/deb-src.sh) and runs apt-get update: needs root (or sudo) that one time.
# Exit status: the runner's; 77 (ctest: skipped) only when python3-django is not installed.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:?usage: scripts/django-tests.sh DIR}"
py=/usr/bin/python3
if ! "$py" -c 'import django' 2>/dev/null; then
  echo "SKIP: Django is not installed for $py (scripts/setup.sh installs python3-django)"
  exit 77
fi
# shellcheck source=lib/deb-src.sh
. "$here/scripts/lib/deb-src.sh"

tests="$(ls -d "$dir"/fetch/python-django-*/tests 2>/dev/null | head -1 || true)"
suite=sessions_tests/tests.py  # in Django's test tree
if [ -z "$tests" ] || [ ! -e "$tests/$suite" ]; then
  mkdir -p "$dir"
  fetch_deb_source python-django python3-django "$dir"
  tests="$(ls -d "$dir"/fetch/python-django-*/tests | head -1)"
fi
echo "Django's tests from $(dirname "$tests")"
exec "$py" "$here/python/tests/django_flask/run_django_session_tests.py" "$tests"
