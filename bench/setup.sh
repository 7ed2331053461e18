#!/usr/bin/env bash
# Installs the Debian packages the bench suite needs beyond scripts/setup.sh's: Redis and hiredis
# (the Redis peers) and gnuplot (the plots). Idempotent; needs root (or sudo) only when something
# is missing.
set -euo pipefail
pkgs=(redis-server libhiredis-dev gnuplot-nox libbenchmark-dev nlohmann-json3-dev pkgconf)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "bench/setup: installing ${missing[*]}" >&2
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
# --no-install-recommends keeps redis-tools' optional extras out; policy-rc.d is not touched: the
# package's own service may start, the bench never uses it (it runs its own server on a private
# port and socket).
$sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
