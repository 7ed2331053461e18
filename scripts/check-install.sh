#!/usr/bin/env bash
# Installs sessionbroker into a temporary prefix and uses it the way an outside project would.
#   1. cmake --install BUILD --prefix TMP; checks the files, and that libsessionbroker.so exports
#      the public API and nothing of the implementation (hidden visibility).
#   2. Builds examples/consumer three ways: CMake + libsessionbroker.so, CMake + libsessionbroker.a,
#      pkg-config + libsessionbroker.so; and examples/c_consumer (C99, the C API) with gcc and
#      pkg-config, and with CMake in a C-only project.
#   3. Starts the installed session-broker on a private segment (--ready-fd through a FIFO) with a
#      NOTIFY_SOCKET listener, runs PROCS processes of each build at once on one session, and checks
#      with the installed sessionctl that the counter is the sum of their increments.
#   4. Stops the broker with SIGTERM: exit status 0, READY=1 and STOPPING=1 received (when built
#      with systemd), the segment removed.
#   With the Python module built: its installed package, imported with PYTHONPATH only, reads the counter.
#   With the etcd backend built: consumers (shared, static, C) on a 3-member loopback cluster through
#   the installed agent (libexec/), found from the library's directory; the library links no gRPC.
# Everything it made is removed on exit. Exits non-zero on any failure.
#   BUILD_DIR=build (configured and built here if needed)  JOBS=$(nproc)  PROCS=4  N=100
set -euo pipefail
cd "$(dirname "$0")/.."
src="$PWD"
build="${BUILD_DIR:-build}"
jobs="${JOBS:-$(nproc)}"
procs="${PROCS:-4}"
n="${N:-100}"
segment="sbtest-install-$$"

tmp="$(mktemp -d /tmp/sessionbroker-install.XXXXXX)"
broker_pid=""
listener_pid=""
cleanup() {
  [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
  [ -n "$listener_pid" ] && kill "$listener_pid" 2>/dev/null && wait "$listener_pid" 2>/dev/null
  rm -f "/dev/shm/$segment"
  [ -d "$tmp/etcd" ] && scripts/etcd-cluster.sh stop "$tmp/etcd" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "check-install: FAILED: $*" >&2; exit 1; }
step() { echo "== check-install: $*"; }

scripts/setup.sh
step "build and install $build into $tmp"
cmake -S . -B "$build" >/dev/null
py_target=()  # the Python module, when this build has it (python/)
grep -qx 'SESSIONBROKER_BUILD_PYTHON:BOOL=ON' "$build/CMakeCache.txt" && py_target=(sessionbroker_python)
etcd_target=()  # the etcd agent, when this build has the etcd backend
grep -qx 'SESSIONBROKER_WITH_ETCD:BOOL=ON' "$build/CMakeCache.txt" && etcd_target=(sessionbroker-etcd-agent)
cmake --build "$build" -j "$jobs" --target sessionbroker_shared sessionbroker_static session-broker sessionctl \
  "${py_target[@]}" "${etcd_target[@]}" >/dev/null
cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log"
prefix="$tmp/prefix"
pc="$(find "$prefix" -name sessionbroker.pc)"
[ -n "$pc" ] || fail "no sessionbroker.pc installed"
libdir="$(dirname "$(dirname "$pc")")"
for f in include/sessionbroker/client.hpp include/sessionbroker/error.hpp include/sessionbroker/export.hpp \
         include/sessionbroker/sessionbroker.h \
         bin/session-broker bin/sessionctl lib/systemd/system/session-broker.service lib/sysusers.d/sessionbroker.conf; do
  [ -e "$prefix/$f" ] || fail "$f not installed"
done
for f in libsessionbroker.so libsessionbroker.a cmake/sessionbroker/sessionbroker-config.cmake \
         cmake/sessionbroker/sessionbroker-config-version.cmake; do
  [ -e "$libdir/$f" ] || fail "$libdir/$f not installed"
done
[ ! -e "$prefix/include/sessionbroker/shm" ] || fail "the segment's headers were installed: they are not API"
grep -q "ExecStart=$prefix/bin/session-broker " "$prefix/lib/systemd/system/session-broker.service" ||
  fail "the unit's ExecStart does not name the installed broker"

step "libsessionbroker.so exports the API and nothing else of ours"
# Names only (parameter types may mention detail::). What remains besides the API is the vague-
# linkage typeinfo of std and Boost classes that their headers declare visible.
exported="$(nm -D --defined-only -C "$libdir/libsessionbroker.so" | cut -d' ' -f3-)"
grep -q '^sessionbroker::Client::attach(' <<<"$exported" || fail "Client::attach is not exported"
if grep -E '^((typeinfo|typeinfo name|vtable) for )?(sessionbroker::(detail|shm|broker)|fmt::)' <<<"$exported"; then
  fail "implementation symbols leak out of libsessionbroker.so (above)"
fi
# The C API: every function sessionbroker.h declares is exported, and no other sb_ symbol is.
declared="$(grep -oE 'SB_API [^(]*\bsb_[a-z_]+\(' "$prefix/include/sessionbroker/sessionbroker.h" | grep -oE 'sb_[a-z_]+' | sort)"
[ "$(wc -l <<<"$declared")" -ge 30 ] || fail "found only $(wc -l <<<"$declared") functions in sessionbroker.h"
c_exported="$(grep -E '^sb_' <<<"$exported" | sort)"
[ "$declared" = "$c_exported" ] ||
  fail "the C API exported differs from sessionbroker.h: $(diff <(echo "$declared") <(echo "$c_exported") | tr '\n' ' ')"
if readelf -d "$libdir/libsessionbroker.so" | grep -q 'NEEDED.*libsystemd'; then
  fail "libsessionbroker.so depends on libsystemd"
fi

step "build examples/consumer against the installed package"
for variant in shared static; do
  static=OFF; [ "$variant" = static ] && static=ON
  cmake -S examples/consumer -B "$tmp/consumer-$variant" -DCMAKE_PREFIX_PATH="$prefix" -DCONSUMER_STATIC="$static" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$tmp/consumer-$variant.log" || { cat "$tmp/consumer-$variant.log"; fail "configure ($variant)"; }
  cmake --build "$tmp/consumer-$variant" >>"$tmp/consumer-$variant.log" || { cat "$tmp/consumer-$variant.log"; fail "build ($variant)"; }
done
export PKG_CONFIG_PATH="$(dirname "$pc")"
# shellcheck disable=SC2046  # pkg-config's output is a list of flags
c++ -std=c++17 -Wall -Wextra -Wpedantic -Werror examples/consumer/main.cpp -o "$tmp/consumer-pkgconfig" \
  $(pkg-config --cflags --libs sessionbroker) -Wl,-rpath,"$(pkg-config --variable=libdir sessionbroker)" ||
  fail "build with pkg-config"
# The C consumer: C99 with pedantic warnings, so the installed header is checked as C too.
# shellcheck disable=SC2046
gcc -std=c99 -Wall -Wextra -Wpedantic -Werror examples/c_consumer/main.c -o "$tmp/c-consumer" \
  $(pkg-config --cflags --libs sessionbroker) -Wl,-rpath,"$(pkg-config --variable=libdir sessionbroker)" ||
  fail "build the C consumer with pkg-config"
cmake -S examples/c_consumer -B "$tmp/c-consumer-cmake" -DCMAKE_PREFIX_PATH="$prefix" >"$tmp/c-consumer-cmake.log" &&
  cmake --build "$tmp/c-consumer-cmake" >>"$tmp/c-consumer-cmake.log" || { cat "$tmp/c-consumer-cmake.log"; fail "build the C consumer with CMake"; }
# ldd's output is taken whole first: `ldd | grep -q` under pipefail fails when grep quits early.
uses_shared() { local deps; deps="$(ldd "$1")" || fail "ldd $1"; grep -q "libsessionbroker.so" <<<"$deps"; }
uses_shared "$tmp/c-consumer" || fail "the C consumer does not use libsessionbroker.so"
uses_shared "$tmp/consumer-shared/consumer" || fail "the CMake shared build does not use libsessionbroker.so"
uses_shared "$tmp/consumer-pkgconfig" || fail "the pkg-config build does not use libsessionbroker.so"
! uses_shared "$tmp/consumer-static/consumer" || fail "the static build loads libsessionbroker.so"

step "run $((5 * procs)) consumer processes against the installed broker (segment $segment)"
notify_log="$tmp/notify.log"
with_systemd=false
if ldd "$prefix/bin/session-broker" | grep -q libsystemd && command -v python3 >/dev/null; then
  with_systemd=true
  # A stand-in for systemd's notification socket: logs every datagram the broker sends.
  python3 - "$tmp/notify.sock" "$notify_log" <<'EOF' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(60)
with open(sys.argv[2], "a", buffering=1) as log:
    while True:
        msg = s.recv(4096).decode()
        log.write(msg + "\n")
        if "STOPPING=1" in msg:
            break
EOF
  listener_pid=$!
  for _ in $(seq 50); do [ -S "$tmp/notify.sock" ] && break; sleep 0.1; done
  [ -S "$tmp/notify.sock" ] || fail "the notification listener did not start"
fi
mkfifo "$tmp/ready"
notify_env=()
[ "$with_systemd" = true ] && notify_env=(NOTIFY_SOCKET="$tmp/notify.sock")
env "${notify_env[@]}" "$prefix/bin/session-broker" --segment "$segment" --remove-on-exit --ready-fd 3 \
  3>"$tmp/ready" >"$tmp/broker.log" 2>&1 &
broker_pid=$!
ready=""
read -r -t 10 ready <"$tmp/ready" || true
[ "$ready" = ready ] || { cat "$tmp/broker.log" >&2; fail "session-broker did not report ready"; }

pids=()
for i in $(seq "$procs"); do
  for variant in consumer-shared/consumer consumer-static/consumer consumer-pkgconfig c-consumer \
                 c-consumer-cmake/c_consumer; do
    "$tmp/$variant" "$segment" counter "$n" >>"$tmp/consumers.log" 2>&1 &
    pids+=($!)
  done
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=$((failed + 1)); done
[ "$failed" -eq 0 ] || { cat "$tmp/consumers.log" >&2; fail "$failed consumer processes failed"; }
total="$("$prefix/bin/sessionctl" get --segment "$segment" counter counter)"
expected=$((5 * procs * n))
[ "$total" = "$expected" ] || fail "counter is $total, expected $expected: updates were lost"
echo "counter = $total after $((5 * procs)) processes (C++ and C) x $n increments"
"$prefix/bin/sessionctl" dump --segment "$segment"
if [ ${#py_target[@]} -gt 0 ]; then
  step "the installed Python package (Debian's layout, no LD_LIBRARY_PATH) reads the same counter"
  pydir="$prefix/lib/python3/dist-packages"
  py_total="$(env -u LD_LIBRARY_PATH PYTHONPATH="$pydir" /usr/bin/python3 -c 'import sys, sessionbroker
with sessionbroker.Client.attach(sys.argv[1]).open("counter").lock(["counter"], exclusive=False, timeout=5) as lock:
    print(int(lock["counter"]))' "$segment")" || fail "import sessionbroker from $pydir"
  [ "$py_total" = "$total" ] || fail "Python read $py_total, sessionctl $total"
  [ -e "$pydir/sessionbroker/py.typed" ] && [ -e "$pydir/sessionbroker/_sessionbroker.pyi" ] || fail "no type stubs installed"
  [ "$(nm -D --defined-only "$pydir"/sessionbroker/_sessionbroker*.so | awk '{print $3}')" = PyInit__sessionbroker ] ||
    fail "the Python module exports more than PyInit__sessionbroker"
fi

agent="$prefix/libexec/sessionbroker-etcd-agent"
if [ -x "$agent" ] && [ -x /usr/bin/etcd ]; then
  step "the same consumers on an etcd store: the installed libraries start the installed agent"
  ! ldd "$libdir/libsessionbroker.so" | grep -q grpc || fail "libsessionbroker.so links gRPC: only the agent may"
  SBETCD_OWNER_PID=$$ scripts/etcd-cluster.sh start "$tmp/etcd" >"$tmp/etcd.endpoints"
  store="etcd://$(cat "$tmp/etcd.endpoints")/install"
  pids=()
  # The shared library finds the agent from its own directory; a static one knows only the
  # configured prefix, so in this relocated install it is told (SESSIONBROKER_ETCD_AGENT).
  for variant in consumer-shared/consumer c-consumer; do
    "$tmp/$variant" "$store" counter 20 >>"$tmp/etcd-consumers.log" 2>&1 &
    pids+=($!)
  done
  SESSIONBROKER_ETCD_AGENT="$agent" "$tmp/consumer-static/consumer" "$store" counter 20 >>"$tmp/etcd-consumers.log" 2>&1 &
  pids+=($!)
  failed=0
  for pid in "${pids[@]}"; do wait "$pid" || failed=$((failed + 1)); done
  [ "$failed" -eq 0 ] || { cat "$tmp/etcd-consumers.log" >&2; fail "$failed consumer processes failed on etcd"; }
  etcd_total="$("$prefix/bin/sessionctl" get --store "$store" counter counter)"
  [ "$etcd_total" = 60 ] || fail "counter on etcd is $etcd_total, expected 60: updates were lost"
  echo "counter on etcd = $etcd_total after 3 processes (shared, static, C) x 20 increments"
  scripts/etcd-cluster.sh stop "$tmp/etcd" >/dev/null
elif grep -qx 'SESSIONBROKER_WITH_ETCD:BOOL=ON' "$build/CMakeCache.txt"; then
  fail "built with etcd but $agent was not installed"
fi

step "stop the broker"
kill -TERM "$broker_pid"
status=0
wait "$broker_pid" || status=$?
broker_pid=""
[ "$status" -eq 0 ] || { cat "$tmp/broker.log" >&2; fail "session-broker exited with status $status"; }
[ ! -e "/dev/shm/$segment" ] || fail "--remove-on-exit left /dev/shm/$segment"
if [ "$with_systemd" = true ]; then
  wait "$listener_pid" || true
  listener_pid=""
  grep -qx "READY=1" "$notify_log" || fail "session-broker sent no READY=1 (got: $(cat "$notify_log"))"
  grep -qx "STOPPING=1" "$notify_log" || fail "session-broker sent no STOPPING=1 (got: $(cat "$notify_log"))"
  echo "sd_notify: $(tr '\n' ' ' <"$notify_log")"
else
  echo "session-broker built without systemd (or no python3): sd_notify not checked"
fi
echo "check-install passed"
