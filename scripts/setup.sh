#!/usr/bin/env bash
# Installs the Debian packages sessionbroker builds with, plus any package names given as
# arguments (bench/setup.sh adds the bench's), only when missing. Idempotent; needs root (or sudo)
# only when something is missing.
set -euo pipefail
pkgs=(g++ cmake make libboost-dev libfmt-dev libcli11-dev nlohmann-json3-dev
      libgtest-dev libgmock-dev libbenchmark-dev pkgconf libsystemd-dev
      python3-dev python3-pytest "$@")  # python3-*: the Python module (python/) and its tests
pkgs+=(python3-django python3-flask gunicorn dpkg-dev)  # python/tests/django_flask/ (dpkg-dev: apt-get source)
# The etcd client layer (libsession/src/etcd/) and its tests' 3-member cluster (scripts/etcd-cluster.sh).
pkgs+=(libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc etcd-server etcd-client iproute2)
# php/ (the PHP save handler) and its tests: php8.2-cgi runs php-src's upload-progress tests;
# bench/php/: FPM behind nginx, wrk, and phpredis against a private redis-server.
pkgs+=(php8.2-dev php8.2-cli php8.2-cgi php8.2-fpm nginx-light wrk php8.2-redis redis-server)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "setup: installing ${missing[*]}" >&2
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
# --no-install-recommends keeps optional extras out (for redis-server: its tools' extras; for
# php8.2-fpm and nginx-light: other PHP SAPIs and web servers. The benches run their own servers
# on private ports and sockets, never the packaged services).
$sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
