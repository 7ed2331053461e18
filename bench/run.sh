#!/usr/bin/env bash
# The bench suite in one command: builds (Release) and runs every scenario of issue 4 beside its
# floors and peers, writes the raw results as JSON, prints the comparison table and draws plots.
#
#   bench/run.sh [--quick] [--out DIR]
#
#   --quick   every scenario briefly (a smoke test: about a minute once built; CI runs this)
#   --out     where results go (default bench/results): *.json (raw results; inproc.gbench.json is
#             Google Benchmark's own), samples/*.dat (latency quantiles), table.md, plots/*.png
# Environment: SBBENCH_BUILD_DIR (default build-bench), SBBENCH_JOBS (build jobs, default nproc).
# A new build directory is configured Release; an existing one keeps its build type (CI's smoke run
# reuses the tests' RelWithDebInfo tree, build/, and compiles only the bench on top of it).
#
# Installs what is missing first (scripts/setup.sh, bench/setup.sh; root or sudo). Starts its own
# redis-server on 127.0.0.1:<free port> and a unix socket, persistence off, and stops it after.
# Leaves nothing behind, Ctrl-C included: segments are named $SBBENCH_PREFIX-* and removed by the
# trap below, the temporary directory too; children die with their parent (PR_SET_PDEATHSIG).
# Timings are never checked: exit status 0 means the suite ran.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=()
out=bench/results
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=(--quick) ;;
    --out) out="${2:?--out needs a directory}"; shift ;;
    --out=*) out="${1#--out=}" ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "usage: bench/run.sh [--quick] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
build="${SBBENCH_BUILD_DIR:-build-bench}"
jobs="${SBBENCH_JOBS:-$(nproc)}"

scripts/setup.sh
bench/setup.sh

export SBBENCH_PREFIX="sbbench-$$"
SBBENCH_TMP="$(mktemp -d /tmp/sbbench-run.XXXXXX)"
export SBBENCH_TMP
cleanup() {
  rm -f /dev/shm/"$SBBENCH_PREFIX"-*
  rm -rf "$SBBENCH_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSESSIONBROKER_BUILD_TESTS=OFF \
    -DSESSIONBROKER_BUILD_BENCH=ON >/dev/null
else
  cmake -S . -B "$build" -DSESSIONBROKER_BUILD_BENCH=ON >/dev/null  # keeps its build type and options
fi
build_type="$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$build/CMakeCache.txt")"
echo "== build ($build, ${build_type:-no build type})"
[ "$build_type" = Release ] || echo "note: $build is not a Release build; its figures are not the release's" >&2
# The Python module and the same loop in C++ and C, when the build has the module (python/).
py_targets=()
grep -qx 'SESSIONBROKER_BUILD_PYTHON:BOOL=ON' "$build/CMakeCache.txt" && py_targets=(sessionbroker_python sb_python_cycle)
cmake --build "$build" -j "$jobs" --target bench_suite "${py_targets[@]}"

mkdir -p "$out"
rm -rf "$out"/*.json "$out"/samples "$out"/plots "$out"/table.md
{
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
       "$(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r), clocksource" \
       "$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null || echo '?')"
  echo "run: $(date -u +%Y-%m-%dT%H:%MZ), ${quick[*]:-full}, ${build_type:-no build type} build, load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out/machine.txt"

status=0
echo "== in-process scenarios (sb_inproc: 1, 2, 4, 5 latency, 7)"
"$build/bench/sb_inproc" "${quick[@]}" --out "$out" \
  --benchmark_out="$out/inproc.gbench.json" --benchmark_out_format=json || status=$?
echo "== multi-process scenarios (sb_multiproc: 3, 5 throughput, 6)"
"$build/bench/sb_multiproc" "${quick[@]}" --out "$out" || status=$?
if [ ${#py_targets[@]} -gt 0 ]; then
  echo "== from Python (bench/python/bench_python.py: the module, the same loop in C++ and C, redis-py)"
  PYTHONPATH="$build/python" /usr/bin/python3 bench/python/bench_python.py "${quick[@]}" --out "$out" --build "$build" ||
    status=$?
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/machine.txt"

echo "== report"
"$build/bench/sb_report" "$out" || status=$?
echo "results: $out/table.md, raw: $out/*.json, plots: $out/plots/"
exit "$status"
