#!/usr/bin/env bash
# Django 3.2's own session tests (SessionTestsMixin, SessionMiddlewareTests of the sessions_tests
# suite in the test tree of Debian's python-django source package), unmodified,
# against sessionbroker.django: fetches that source with `apt-get source` into DIR once, then runs
# python/tests/django_flask/run_django_session_tests.py on it (which starts its own broker).
#   scripts/django-tests.sh DIR        # ctest (Python.django_suite): DIR = <build>/django-src,
#                                      # PYTHONPATH and SESSIONBROKER_BROKER set by ctest
# When apt has no deb-src entry, it writes one derived from the machine's own apt sources (the same
# entries with Types: deb-src, or deb-src lines for one-line sources) under
# /etc/apt/sources.list.d/ and runs apt-get update: needs root (or sudo) that one time.
# Exit status: the runner's; 77 (ctest: skipped) only when python3-django is not installed.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:?usage: scripts/django-tests.sh DIR}"
py=/usr/bin/python3
if ! "$py" -c 'import django' 2>/dev/null; then
  echo "SKIP: Django is not installed for $py (scripts/setup.sh installs python3-django)"
  exit 77
fi
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"

# deb-src entries mirroring the deb ones: deb822 stanzas (*.sources) with their Types replaced,
# one-line entries (sources.list, *.list) with "deb" replaced.
add_deb_src() {
  local d=/etc/apt/sources.list.d f
  local tmp; tmp="$(mktemp -d)"
  for f in "$d"/*.sources; do
    [ -e "$f" ] && [ "$f" != "$d/sessionbroker-deb-src.sources" ] || continue
    sed -E 's/^Types:.*/Types: deb-src/' "$f"; echo
  done >"$tmp/src.sources"
  for f in /etc/apt/sources.list "$d"/*.list; do
    [ -e "$f" ] && [ "$f" != "$d/sessionbroker-deb-src.list" ] || continue
    sed -nE 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f"
  done >"$tmp/src.list"
  [ -s "$tmp/src.sources" ] && $sudo cp "$tmp/src.sources" "$d/sessionbroker-deb-src.sources"
  [ -s "$tmp/src.list" ] && $sudo cp "$tmp/src.list" "$d/sessionbroker-deb-src.list"
  rm -rf "$tmp"
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
}

# The source of the installed Django first, then any other version apt knows (newest first): a
# mirror may list a version whose files it no longer serves.
fetch() {
  local versions v
  versions="$(apt-cache showsrc python-django 2>/dev/null | sed -n 's/^Version: //p' |
              sort -r -V || true)"
  if [ -z "$versions" ]; then
    add_deb_src
    versions="$(apt-cache showsrc python-django | sed -n 's/^Version: //p' | sort -r -V)"
  fi
  [ -n "$versions" ] || { echo "apt knows no source of python-django" >&2; return 1; }
  versions="$(dpkg-query -W -f='${Version}' python3-django)"$'\n'"$versions"
  rm -rf "$dir/fetch" && mkdir -p "$dir/fetch"
  for v in $versions; do
    if (cd "$dir/fetch" && apt-get source -qq "python-django=$v" >apt-source.log 2>&1); then
      return 0
    fi
    echo "apt-get source python-django=$v failed; trying another version" >&2
    tail -3 "$dir/fetch/apt-source.log" >&2
    rm -rf "${dir:?}/fetch"/python-django*
  done
  return 1
}

tests="$(ls -d "$dir"/fetch/python-django-*/tests 2>/dev/null | head -1 || true)"
suite=sessions_tests/tests.py  # in Django's test tree
if [ -z "$tests" ] || [ ! -e "$tests/$suite" ]; then
  mkdir -p "$dir"
  fetch
  tests="$(ls -d "$dir"/fetch/python-django-*/tests | head -1)"
fi
echo "Django's tests from $(dirname "$tests")"
exec "$py" "$here/python/tests/django_flask/run_django_session_tests.py" "$tests"
