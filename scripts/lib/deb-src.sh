# Sourced by scripts that run an upstream project's own tests from its Debian source package
# (django-tests.sh: python-django; php-tests.sh: php8.2). Defines:
#   add_deb_src                      writes deb-src entries derived from the machine's own apt
#                                    sources (the same entries with Types: deb-src, or deb-src
#                                    lines for one-line sources) under /etc/apt/sources.list.d/
#                                    and runs apt-get update: needs root (or sudo) that one time.
#   fetch_deb_source SRC BIN DIR     `apt-get source SRC` into DIR/fetch: the version of the
#                                    installed binary package BIN first, then every other version
#                                    apt knows, newest first (a mirror may list a version whose
#                                    files it no longer serves). Calls add_deb_src when apt knows
#                                    no source of SRC. Returns non-zero when no version could be had.
# No host is named here: the entries are the machine's own.

deb_src_sudo=""; [ "$(id -u)" -eq 0 ] || deb_src_sudo="sudo"

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
  [ -s "$tmp/src.sources" ] && $deb_src_sudo cp "$tmp/src.sources" "$d/sessionbroker-deb-src.sources"
  [ -s "$tmp/src.list" ] && $deb_src_sudo cp "$tmp/src.list" "$d/sessionbroker-deb-src.list"
  rm -rf "$tmp"
  $deb_src_sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
}

fetch_deb_source() {
  local src="$1" bin="$2" dir="$3" versions v lock
  # Two suites may fetch at once (ctest -j): apt-get update refuses to run beside another, so the
  # check and the update are one at a time.
  exec {lock}>"${TMPDIR:-/tmp}/sessionbroker-deb-src.lock"
  flock "$lock"
  versions="$(apt-cache showsrc "$src" 2>/dev/null | sed -n 's/^Version: //p' | sort -r -V || true)"
  if [ -z "$versions" ]; then
    add_deb_src
    versions="$(apt-cache showsrc "$src" | sed -n 's/^Version: //p' | sort -r -V)"
  fi
  exec {lock}>&-
  [ -n "$versions" ] || { echo "apt knows no source of $src" >&2; return 1; }
  versions="$(dpkg-query -W -f='${Version}' "$bin")"$'\n'"$versions"
  rm -rf "$dir/fetch" && mkdir -p "$dir/fetch"
  for v in $versions; do
    if (cd "$dir/fetch" && apt-get source -qq "$src=$v" >apt-source.log 2>&1); then
      return 0
    fi
    echo "apt-get source $src=$v failed; trying another version" >&2
    tail -3 "$dir/fetch/apt-source.log" >&2
    rm -rf "${dir:?}/fetch/${src:?}"*
  done
  return 1
}
