#!/usr/bin/env bash
# sessionbroker's etcd backend beside etcd's own lock service (v3lock Lock/Unlock through the same
# gRPC client, each lock on a lease), on a 3-member loopback cluster this script starts, in one
# run: uncontended acquire+release (with its floor and the client's CPU per cycle), a 2-process
# handoff, a fenced commit, the cached re-acquire (beside the shared-memory backend's, same run)
# and dead-holder recovery without and with
# `session-broker --store ... --host-id` on the holder's "host" (bench/etcd/main.cpp says how each
# is measured).
#
#   bench/etcd/run.sh [--quick] [--out DIR]
#
#   --quick   a few iterations of each (a smoke run for CI, about 15 s once built)
#   --out     where results go (default bench/results/etcd): etcd.md (the table, also printed),
#             sb_etcd.json (every summary), samples/*.dat (latency quantiles), run.txt (the setup)
# Environment: SBBENCH_BUILD_DIR (default build-bench), SBBENCH_JOBS (build jobs, default 2).
#
# Exits 77 (skipped) when the build has no etcd backend (no gRPC++: scripts/setup.sh installs it)
# or etcd-server is missing. The cluster's data lives on tmpfs (scripts/etcd-cluster.sh) and is
# removed on any exit, Ctrl-C included (and by the script's watchdog should this shell be killed).
# Timings are never checked: exit status 0 means every scenario ran.
set -euo pipefail
cd "$(dirname "$0")/../.."

quick=()
out=bench/results/etcd
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=(--quick) ;;
    --out) out="${2:?--out needs a directory}"; shift ;;
    --out=*) out="${1#--out=}" ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "usage: bench/etcd/run.sh [--quick] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
build="${SBBENCH_BUILD_DIR:-build-bench}"
jobs="${SBBENCH_JOBS:-2}"

if [ ! -x /usr/bin/etcd ]; then
  echo "bench/etcd: skipped: etcd-server is not installed (scripts/setup.sh installs it)" >&2
  exit 77
fi
echo "== build ($build, Release: sb_etcd, session-broker)"
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSESSIONBROKER_BUILD_TESTS=OFF >/dev/null
else
  cmake -S . -B "$build" >/dev/null
fi
if ! grep -qx 'SESSIONBROKER_WITH_ETCD:BOOL=ON' "$build/CMakeCache.txt"; then
  echo "bench/etcd: skipped: $build has no etcd backend (SESSIONBROKER_WITH_ETCD is off: gRPC++ not found)" >&2
  exit 77
fi
targets="$(cmake --build "$build" --target help)"
if ! grep -qx '\.\.\. sb_etcd' <<<"$targets"; then
  echo "bench/etcd: skipped: $build has no sb_etcd target (the bench suite needs libbenchmark-dev and nlohmann-json3-dev: bench/setup.sh)" >&2
  exit 77
fi
cmake --build "$build" -j "$jobs" --target sb_etcd >/dev/null

export SBBENCH_PREFIX="sbbench-etcd-$$"
cluster="$(mktemp -d /tmp/sbbench-etcd.XXXXXX)"
cleanup() {
  scripts/etcd-cluster.sh stop "$cluster/c" >/dev/null 2>&1 || true
  rm -rf "$cluster"
  rm -f /dev/shm/"$SBBENCH_PREFIX"-*
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== a 3-member etcd cluster on loopback (scripts/etcd-cluster.sh)"
endpoints="$(SBETCD_OWNER_PID=$$ scripts/etcd-cluster.sh start "$cluster/c")"
echo "endpoints $endpoints"

mkdir -p "$out"
rm -rf "$out"/sb_etcd.json "$out"/samples "$out"/etcd.md
{
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
       "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
  echo "etcd: $(/usr/bin/etcd --version | head -1), 3 members on 127.0.0.1, data on tmpfs, heartbeat 25 ms, election 250 ms"
  echo "run: $(date -u +%Y-%m-%dT%H:%MZ), load average at start $(cut -d' ' -f1-3 /proc/loadavg)${quick[*]:+, --quick}"
} | tee "$out/run.txt"
"$build/bench/sb_etcd" --endpoints "$endpoints" --out "$out" "${quick[@]}"
echo "load average at end $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/run.txt"
echo "results: $out/etcd.md, $out/sb_etcd.json"
