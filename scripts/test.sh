#!/usr/bin/env bash
# Builds sessionbroker and runs its test suite. Installs missing Debian packages first.
#   scripts/test.sh                      # RelWithDebInfo build in build/, every test
#   SANITIZE=address,undefined scripts/test.sh   # in build-asan/
#   SANITIZE=thread scripts/test.sh      # in build-tsan/, the in-process thread-lock, fast-path, detach and record-pool tests only
# Extra arguments go to ctest (for example -R Claim07 or --output-on-failure).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
sanitize="${SANITIZE:-}"
case "$sanitize" in
  "") dir=build; type=RelWithDebInfo; filter=(); install=ON ;;
  address,undefined) dir=build-asan; type=Debug; filter=(); install=OFF ;;
  thread) dir=build-tsan; type=Debug; install=OFF
          filter=(-R 'ClaimTest\.(Claim05|SharedProcessLock|Uncommitted|FastPath)|LifecycleTest\.Detach|RecordPoolTest') ;;
  *) echo "SANITIZE must be empty, address,undefined or thread" >&2; exit 2 ;;
esac
jobs="$(nproc)"
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" -DSESSIONBROKER_SANITIZE="$sanitize" \
  -DSESSIONBROKER_BUILD_TESTS=ON -DSESSIONBROKER_BUILD_TOOLS=ON -DSESSIONBROKER_BUILD_BENCH=ON \
  -DSESSIONBROKER_INSTALL="$install" >/dev/null
if [ "$sanitize" = thread ]; then
  cmake --build "$dir" -j "$jobs" --target thread_lock_test lifecycle_test
else
  cmake --build "$dir" -j "$jobs"
fi
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1}"
cd "$dir"
ctest -j "$jobs" --timeout 180 --output-on-failure "${filter[@]}" "$@"
