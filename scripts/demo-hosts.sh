#!/usr/bin/env bash
# The README's "Many hosts" walk-through as a test (ctest EtcdDemoAcrossTwoHosts): three etcd
# members on loopback, two brokers standing for hosts a and b, and sessionbroker-demo's workers in
# two groups, one per host, contending for the same sessions. Passes when the demo does (every
# increment committed, no lost update, no lost lock, no failed worker) and both brokers are still
# serving at the end.
#
#   scripts/demo-hosts.sh SESSION_BROKER SESSIONBROKER_DEMO [DEMO OPTIONS...]
#
# Leaves nothing behind: the brokers are stopped, the cluster killed and its data removed on any
# exit (and by etcd-cluster.sh's watchdog should this shell be killed).
set -euo pipefail
broker="${1:?usage: scripts/demo-hosts.sh SESSION_BROKER SESSIONBROKER_DEMO [DEMO OPTIONS...]}"
demo="${2:?usage: scripts/demo-hosts.sh SESSION_BROKER SESSIONBROKER_DEMO [DEMO OPTIONS...]}"
shift 2
cd "$(dirname "$0")/.."

dir="$(mktemp -d /tmp/sbdemo-hosts.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  scripts/etcd-cluster.sh stop "$dir/c" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

endpoints="$(SBETCD_OWNER_PID=$$ scripts/etcd-cluster.sh start "$dir/c")"
store="etcd://$endpoints/demo"
for host in a b; do
  "$broker" --store "$store" --host-id "$host" --ready-fd 3 3>"$dir/ready-$host" 2>"$dir/broker-$host.log" &
  pids+=($!)
done
for host in a b; do
  for _ in $(seq 200); do [ -s "$dir/ready-$host" ] && break; sleep 0.05; done
  [ -s "$dir/ready-$host" ] || { echo "broker of host $host not ready in 10 s:" >&2; cat "$dir/broker-$host.log" >&2; exit 1; }
done
"$demo" --store "$store" --hosts a,b "$@"
for i in 0 1; do
  kill -0 "${pids[$i]}" 2>/dev/null || { echo "a broker exited during the demo" >&2; exit 1; }
done
