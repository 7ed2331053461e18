#!/usr/bin/env bash
# Fuzzes segment validation (detail::Segment::validate and the read-only walks behind it) with
# libFuzzer, clang-14, ASan and UBSan. Installs what it needs when missing (as root, or with sudo).
#
#   fuzz/run.sh [SECONDS]          build, then fuzz SECONDS (default 60) on a scratch copy of
#                                  fuzz/corpus; exits non-zero on a crash, hang (>10 s), leak or
#                                  UB, leaving the input in fuzz/build/artifacts/
#   fuzz/run.sh --build            build fuzz/build/segment_validate_fuzz only
#   fuzz/run.sh --repro FILE...    run the target once on each FILE (a crash input, a seed)
#   fuzz/run.sh --make-corpus      rebuild fuzz/corpus with fuzz/make_corpus.cpp (uses /dev/shm)
#   SB_FUZZ_DEEP=1 fuzz/run.sh N   also fuzz Registry::list_sessions, check_segment and Admin::snapshot (the
#                                  walks of Client::list, sessionctl check/dump); its former crash reproducers now live in corpus/
#
# One core: the fuzzer runs as -jobs=1 -workers=1 (its output goes to fuzz/build/fuzz-0.log and is
# summarised here). The committed corpus is never written to; new inputs stay in fuzz/build/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
out="$here/build"
export DEBIAN_FRONTEND=noninteractive

# ---- packages -------------------------------------------------------------------------------
pkgs=(clang-14 libclang-rt-14-dev libfmt-dev libboost-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "fuzz: installing ${missing[*]}" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "fuzz: need root or sudo to install ${missing[*]}" >&2; exit 2; }
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
cxx=clang++-14

# ---- build ----------------------------------------------------------------------------------
# The sources of a library target, read from libsession/CMakeLists.txt so this stays in step with it:
# sessionbroker_core (Segment and the store's roles) for the fuzzer, plus sessionbroker_session (Client) for make_corpus.
srcs() {
  for t in "$@"; do
    sed -n "/add_library($t /,/)/p" "$root/libsession/CMakeLists.txt" | grep -o 'src/[A-Za-z0-9_]*\.cpp' |
      sed "s|^|$root/libsession/|"
  done
}
# The shared-memory backend (open_backend() and ShmBackend), which sessionbroker_session needs: its
# sources are a variable of libsession/CMakeLists.txt.
shm_backend_srcs() {
  sed -n '/set(SESSIONBROKER_SHM_BACKEND_SOURCES/p' "$root/libsession/CMakeLists.txt" | grep -o 'src/[A-Za-z0-9_]*\.cpp' |
    sed "s|^|$root/libsession/|"
}
includes=(-I"$root/shm_layout/include" -I"$root/libsession/include" -I"$root/libsession/src" -I"$here")
common=(-std=c++20 -g -DSESSIONBROKER_STATIC -pthread "${includes[@]}")

# Rebuilds $1 from the rest of the arguments when any source or header is newer than it.
stale() {
  local bin="$1"
  [ -x "$bin" ] || return 0
  [ -n "$(find "$here"/*.cpp "$here"/*.hpp "$root/libsession/src" "$root/libsession/include" \
            "$root/shm_layout/include" "$root/libsession/CMakeLists.txt" "$0" -newer "$bin" -print -quit)" ]
}

target="$out/segment_validate_fuzz"
build_fuzzer() {
  mkdir -p "$out"
  if stale "$target"; then
    echo "fuzz: building $target" >&2
    mapfile -t lib < <(srcs sessionbroker_core)
    $cxx "${common[@]}" -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
      -fno-sanitize-recover=all "$here/segment_validate_fuzz.cpp" "${lib[@]}" -lfmt -o "$target.tmp"
    mv "$target.tmp" "$target"
  fi
}

make_corpus() {
  mkdir -p "$out"
  local bin="$out/make_corpus"
  if stale "$bin"; then
    echo "fuzz: building $bin" >&2
    mapfile -t lib < <(srcs sessionbroker_core sessionbroker_session; shm_backend_srcs)
    $cxx "${common[@]}" -O1 "$here/make_corpus.cpp" "${lib[@]}" -lfmt -o "$bin.tmp"
    mv "$bin.tmp" "$bin"
  fi
  rm -rf "$here/corpus"
  mkdir -p "$here/corpus"
  "$bin" "$here/corpus"
  du -sh "$here/corpus"
}

# A small quarantine keeps the fuzzer near 100 MB instead of ~900 MB (it allocates per input).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:quarantine_size_mb=32:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

case "${1:-}" in
  --build) build_fuzzer; exit 0 ;;
  --make-corpus) make_corpus; exit 0 ;;
  --repro)
    shift
    build_fuzzer
    exec "$target" -runs=1 "$@" ;;
  -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
esac

seconds="${1:-60}"
case "$seconds" in ''|*[!0-9]*) echo "usage: $0 [seconds] | --build | --repro FILE... | --make-corpus" >&2; exit 2 ;; esac
build_fuzzer

work="$out/run-corpus"
rm -rf "$work" "$out/artifacts" "$out"/fuzz-*.log
mkdir -p "$work" "$out/artifacts"
cp "$here"/corpus/* "$work"/

deep=""; case "${SB_FUZZ_DEEP:-0}" in 0) ;; *) deep=" (deep: also Admin::snapshot)" ;; esac
echo "fuzz: ${seconds}s on $(ls "$work" | wc -l) seeds$deep" >&2
rc=0
(cd "$out" && "$target" -jobs=1 -workers=1 -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
   -max_len=32768 -dict="$here/segment.dict" -artifact_prefix="$out/artifacts/" -print_final_stats=1 \
   "$work") >"$out/fuzz-parent.log" 2>&1 || rc=$?
log="$out/fuzz-0.log"
if [ "$rc" -ne 0 ]; then
  echo "fuzz: FAILED (exit $rc); last lines of $log:" >&2
  grep -vE '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)' "$log" | tail -n 80 >&2 || cat "$out/fuzz-parent.log" >&2
  echo "fuzz: crashing input(s):" >&2
  ls -l "$out/artifacts" >&2
  exit 1
fi
grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)' "$log" >&2 || true
grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$log" >&2 || true
echo "fuzz: no crash, hang or leak in ${seconds}s" >&2
