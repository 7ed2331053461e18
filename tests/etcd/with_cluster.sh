#!/usr/bin/env bash
# Runs a command against a fresh 3-member etcd cluster on loopback (scripts/etcd-cluster.sh),
# with every argument @STORE@ replaced by etcd://<the members>/<a fresh prefix>; stops the
# cluster afterwards, whatever happened. Exit status: the command's.
#   tests/etcd/with_cluster.sh sessionbroker-torture --store @STORE@ --kills 60
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
dir="$(mktemp -d /tmp/sbetcd-run.XXXXXX)"
trap 'bash "$here/scripts/etcd-cluster.sh" stop "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
bash "$here/scripts/etcd-cluster.sh" start "$dir" >/dev/null
store="etcd://$(bash "$here/scripts/etcd-cluster.sh" endpoints "$dir")/run$$"
args=()
for a in "$@"; do args+=("${a//@STORE@/$store}"); done
"${args[@]}"
