#!/usr/bin/env bash
# The PHP session save handler (php/) built and tested the way its users get it:
#   scripts/php-tests.sh BUILD_DIR build     cmake --install BUILD_DIR into BUILD_DIR/php-prefix,
#                                            then phpize, ./configure --with-sessionbroker=that
#                                            prefix and make in BUILD_DIR/php-build (a copy of php/,
#                                            so the source tree stays clean)
#   scripts/php-tests.sh BUILD_DIR phpt      our tests (php/tests/*.phpt) with PHP's run-tests.php
#   scripts/php-tests.sh BUILD_DIR phpt-etcd the same with sessionbroker.segment an etcd:// store on a
#                                            3-member loopback cluster (the installed agent)
#   scripts/php-tests.sh BUILD_DIR php-src   php-src's own ext/session/tests from Debian's php8.2
#                                            source package (fetched into BUILD_DIR/php-src once,
#                                            scripts/lib/deb-src.sh), with
#                                            -d session.save_handler=sessionbroker -d session.save_path=
#   scripts/php-tests.sh BUILD_DIR all       the three in turn
# ctest runs build as the fixture of the others (PHP.build, PHP.phpt, PHP.phpt_etcd, PHP.php_src_session).
# The tests run against BUILD_DIR/broker/session-broker on a private segment (sbtest-php-*),
# stopped and removed on exit. Exit status: 0 when every test passed; 77 (ctest: skipped) when
# php8.2-dev is not installed.
#
# php-src's tests: every test whose INI section does not pin session.save_handler runs with ours
# and must pass, except two that cannot pass for any handler but files:
#   bug61470.phpt  looks for the sess_* file of the regenerated id in session.save_path;
#   bug74514.phpt  expects session_module_name() to say "files".
# Tests that pin a handler (files or user) do not test ours and are left out.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:?usage: scripts/php-tests.sh BUILD_DIR build|phpt|php-src|all}" && pwd)"
what="${2:-all}"
php_config=php-config8.2
phpize=phpize8.2
if ! command -v "$php_config" >/dev/null || ! command -v "$phpize" >/dev/null; then
  echo "SKIP: php8.2-dev is not installed (scripts/setup.sh installs it)"
  exit 77
fi
php="$("$php_config" --php-binary)"
run_tests="$build/php-build/run-tests.php"  # phpize copies PHP's run-tests.php (php8.2-dev) there
module="$build/php-build/modules/sessionbroker.so"
excluded=(bug61470.phpt bug74514.phpt)

build_extension() {
  echo "== install $build into $build/php-prefix; build the extension in $build/php-build"
  cmake --install "$build" --prefix "$build/php-prefix" >"$build/php-install.log"
  rm -rf "$build/php-build" && mkdir -p "$build/php-build/tests"
  cp "$here"/php/config.m4 "$here"/php/*.c "$here"/php/*.h "$build/php-build/"
  cp "$here"/php/tests/*.phpt "$here"/php/tests/*.inc "$build/php-build/tests/"
  (cd "$build/php-build" && "$phpize" >phpize.log &&
   ./configure --with-php-config="$(command -v "$php_config")" --with-sessionbroker="$build/php-prefix" >configure.log &&
   make -j "$(nproc)" >make.log 2>&1) || { tail -30 "$build/php-build"/*.log >&2; return 1; }
  if grep -E 'warning:' "$build/php-build/make.log"; then
    echo "the extension does not build warnings-clean (above)" >&2
    return 1
  fi
  echo "built $module"
}

broker_pid=""
segment=""
tmp="$(mktemp -d /tmp/sessionbroker-php.XXXXXX)"
cleanup() {
  if [ -n "$broker_pid" ]; then kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
  [ -n "$segment" ] && rm -f "/dev/shm/$segment"
  [ -d "$tmp/etcd" ] && "$here/scripts/etcd-cluster.sh" stop "$tmp/etcd" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT

# A broker on a private segment, ready once it says so on a pipe (--ready-fd).
start_broker() {
  segment="sbtest-php-$$"
  mkfifo "$tmp/ready"
  "$build/broker/session-broker" --segment "$segment" --remove-on-exit --ready-fd 3 --max-clients 256 \
    3>"$tmp/ready" >"$tmp/broker.log" 2>&1 &
  broker_pid=$!
  local ready=""
  read -r -t 30 ready <"$tmp/ready" || true
  [ "$ready" = ready ] || { cat "$tmp/broker.log" >&2; echo "session-broker did not start" >&2; return 1; }
}

# A 3-member etcd cluster on loopback instead (scripts/etcd-cluster.sh, killed when this script
# exits): the handler's store is then etcd://.../php, through the installed libexec agent.
start_etcd() {
  [ -x /usr/bin/etcd ] || { echo "SKIP: etcd-server is not installed (scripts/setup.sh installs it)"; exit 77; }
  [ -x "$build/php-prefix/libexec/sessionbroker-etcd-agent" ] ||
    { echo "SKIP: this build has no etcd backend (no gRPC++: scripts/setup.sh installs it)"; exit 77; }
  SBETCD_OWNER_PID=$$ "$here/scripts/etcd-cluster.sh" start "$tmp/etcd" >"$tmp/etcd.endpoints"
  segment="etcd://$(cat "$tmp/etcd.endpoints")/php"
}

# run-tests.php with our handler on the private segment. TEST_PHP_CGI_EXECUTABLE: php-src's
# upload-progress (rfc1867) tests run through php-cgi.
run_phpt() {
  [ -e "$module" ] || { echo "no $module: run '$0 $build build' first" >&2; return 1; }
  local cgi; cgi="$(command -v php-cgi8.2 || true)"
  TEST_PHP_EXECUTABLE="$php" TEST_PHP_CGI_EXECUTABLE="$cgi" NO_INTERACTION=1 REPORT_EXIT_STATUS=1 \
    SESSIONBROKER_SESSIONCTL="$build/tools/sessionctl/sessionctl" \
    "$php" "$run_tests" -q -j2 --show-diff -d extension="$module" -d session.save_handler=sessionbroker \
    -d session.save_path= -d sessionbroker.segment="$segment" "$@"
}

run_ours() {
  echo "== php/tests/*.phpt against the handler (segment $segment)"
  run_phpt "$build/php-build/tests"
}

run_php_src() {
  # shellcheck source=lib/deb-src.sh
  . "$here/scripts/lib/deb-src.sh"
  local dir="$build/php-src" tests
  tests="$(ls -d "$dir"/fetch/php8.2-*/ext/session/tests 2>/dev/null | head -1 || true)"
  if [ -z "$tests" ]; then
    mkdir -p "$dir"
    fetch_deb_source php8.2 php8.2-cli "$dir"
    tests="$(ls -d "$dir"/fetch/php8.2-*/ext/session/tests | head -1)"
  fi
  local all=0 pinned=0 chosen=()
  for f in "$tests"/*.phpt; do
    all=$((all + 1))
    if awk '/^--INI--$/{s=1; next} /^--[A-Z_]+--$/{s=0} s' "$f" | grep -q '^session\.save_handler'; then
      pinned=$((pinned + 1)); continue
    fi
    case " ${excluded[*]} " in *" $(basename "$f") "*) continue ;; esac
    chosen+=("$f")
  done
  echo "== php-src's session tests from $(dirname "$(dirname "$(dirname "$tests")")"): ${#chosen[@]} of $all" \
       "(left out: $pinned pinning their own handler, ${#excluded[@]} for files only: ${excluded[*]})"
  run_phpt "${chosen[@]}"
}

case "$what" in
  build) build_extension ;;
  phpt) start_broker; run_ours ;;
  phpt-etcd) start_etcd; run_ours ;;
  php-src) start_broker; run_php_src ;;
  all) build_extension; start_broker; run_ours; run_php_src ;;
  *) echo "usage: scripts/php-tests.sh BUILD_DIR build|phpt|phpt-etcd|php-src|all" >&2; exit 2 ;;
esac
