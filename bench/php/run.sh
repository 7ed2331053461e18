#!/usr/bin/env bash
# PHP's session handlers on a real server: php8.2-fpm (a static pool of 8 workers) behind nginx,
# a script that adds one to a counter in $_SESSION (www/incr.php), and wrk sending C concurrent
# streams of requests that all carry one session cookie. For each handler: lost updates, requests
# per second, p50 and p99 latency.
#
#   bench/php/run.sh [--quick] [--out DIR] [--connections C] [--requests N]
#
#   --quick        a smoke test: N=10 (160 requests per handler), a few seconds each
#   --out          where results go (default bench/results/php): DIR/php.md (the table), DIR/*.wrk
#                  (wrk's reports), DIR/*.php-errors.log (PHP's warnings, when any)
#   --connections  C concurrent connections, one wrk thread each (default 16)
#   --requests     N requests per connection (default 125: 2000 per handler)
# Environment: SBBENCH_BUILD_DIR (default build-bench), SBBENCH_JOBS (build jobs, default 2).
#
# Handlers: files (flock on a file per session), redis (phpredis on a private redis-server's unix
# socket) with redis.session.locking_enabled=1 and without locking, and sessionbroker. Lost updates
# = 1 + answers with status 200 - the final counter: each 200 ran incr.php once, so each one the
# counter misses was overwritten by a concurrent request (or ran without its session).
# Everything runs as private instances under a temporary directory (session-broker on segment
# sbbench-php-<pid>, redis-server on a unix socket with persistence off, php-fpm on a unix socket,
# nginx on 127.0.0.1:<free port>), never the packaged services, and is stopped and removed on any
# exit. The one assertion, also in --quick: sessionbroker loses no update and fails no request
# (correctness). Timings are never checked.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"

quick=0; out=bench/results/php; conns=16; per=125
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; per=10 ;;
    --out) out="$2"; shift ;;
    --connections) conns="$2"; shift ;;
    --requests) per="$2"; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (--help)" >&2; exit 2 ;;
  esac
  shift
done
build="${SBBENCH_BUILD_DIR:-build-bench}"
jobs="${SBBENCH_JOBS:-2}"

scripts/setup.sh

echo "== build ($build: libraries, session-broker, sessionctl; the PHP extension)"
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSESSIONBROKER_BUILD_TESTS=OFF \
    -DSESSIONBROKER_BUILD_BENCH=OFF >/dev/null
else
  cmake -S . -B "$build" >/dev/null
fi
targets=(sessionbroker_shared sessionbroker_static session-broker sessionctl)
grep -qx 'SESSIONBROKER_BUILD_PYTHON:BOOL=ON' "$build/CMakeCache.txt" && targets+=(sessionbroker_python)  # installed too
cmake --build "$build" -j "$jobs" --target "${targets[@]}" >/dev/null
scripts/php-tests.sh "$build" build >/dev/null
module="$(cd "$build" && pwd)/php-build/modules/sessionbroker.so"
mkdir -p "$out"

tmp="$(mktemp -d /tmp/sessionbroker-phpbench.XXXXXX)"
segment="sbbench-php-$$"
pids=()
fpm_pid=""
cleanup() {
  [ -n "$fpm_pid" ] && kill "$fpm_pid" 2>/dev/null && wait "$fpm_pid" 2>/dev/null
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -f "/dev/shm/$segment"
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() { echo "bench/php: FAILED: $*" >&2; exit 1; }

# Polls for `what` (a test command) for at most 10 s: the servers have no readiness signal.
wait_for() {
  local i
  for i in $(seq 200); do "$@" 2>/dev/null && return 0; sleep 0.05; done
  return 1
}
fill() {  # fill TEMPLATE > FILE: the @VARS@ of the config templates
  sed -e "s|@TMP@|$tmp|g" -e "s|@PORT@|$port|g" -e "s|@WWW@|$root/bench/php/www|g" -e "s|@USER@|$2|g" "$1"
}

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
url="http://127.0.0.1:$port"
root_user=""; fpm_root=(); nginx_user=""
if [ "$(id -u)" -eq 0 ]; then  # as root: the workers stay root (no other user may need the temp dir)
  root_user="user = root"; fpm_root=(-R); nginx_user="user root;"
fi
fill bench/php/fpm.conf.in "$root_user" >"$tmp/fpm.conf"
fill bench/php/nginx.conf.in "$nginx_user" >"$tmp/nginx.conf"
mkdir -p "$tmp/sessions"

echo "== servers: session-broker ($segment), redis-server, nginx on $url"
mkfifo "$tmp/ready"
"$build/broker/session-broker" --segment "$segment" --remove-on-exit --ready-fd 3 3>"$tmp/ready" >"$tmp/broker.log" 2>&1 &
pids+=($!)
read -r -t 30 ready <"$tmp/ready" && [ "$ready" = ready ] || { cat "$tmp/broker.log" >&2; fail "session-broker did not start"; }
redis-server --port 0 --unixsocket "$tmp/redis.sock" --unixsocketperm 700 --save "" --appendonly no \
  --daemonize no --logfile "$tmp/redis.log" &
pids+=($!)
wait_for test -S "$tmp/redis.sock" || fail "redis-server did not start"
nginx -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/nginx-error.log" -g 'daemon off;' &
pids+=($!)
wait_for curl -s -o /dev/null "$url/" || { cat "$tmp/nginx-error.log" >&2; fail "nginx did not start"; }

# One handler: php-fpm with its settings (-d), a fresh session, wrk, the final counter.
results=()
run_handler() {
  local name="$1"; shift
  rm -f "$tmp/fpm.sock"
  php-fpm8.2 "${fpm_root[@]}" -F -y "$tmp/fpm.conf" -d extension="$module" -d sessionbroker.segment="$segment" \
    -d session.gc_probability=0 "$@" >"$tmp/fpm-$name.out" 2>&1 &
  fpm_pid=$!
  wait_for test -S "$tmp/fpm.sock" || { cat "$tmp/fpm-$name.out" "$tmp/fpm.log" >&2; fail "php-fpm ($name) did not start"; }
  local first sid
  first="$(curl -s -c "$tmp/jar" "$url/incr.php")"
  sid="$(awk '$6 == "PHPSESSID" {print $7}' "$tmp/jar")"
  [ "$first" = 1 ] && [ -n "$sid" ] || { cat "$tmp/php-errors.log" >&2 || true; fail "$name: the first request said '$first'"; }
  rm -rf "$tmp/done" && mkdir "$tmp/done"
  SB_REQUESTS="$per" SB_COOKIE="PHPSESSID=$sid" SB_DONE_DIR="$tmp/done" \
    wrk -t "$conns" -c "$conns" -d 3600s --timeout 60s --latency -s bench/php/incr.lua "$url" >"$out/$name.wrk" &
  local wrk_pid=$! i
  for i in $(seq 36000); do  # every thread done (incr.lua), or wrk gone
    [ "$(ls "$tmp/done" | wc -l)" -ge "$conns" ] && break
    kill -0 "$wrk_pid" 2>/dev/null || break
    sleep 0.02
  done
  kill -INT "$wrk_pid" 2>/dev/null || true
  wait "$wrk_pid" || fail "$name: wrk failed: $(cat "$out/$name.wrk")"
  local final total non2xx rps p50 p99 ok lost
  final="$(curl -s -b "PHPSESSID=$sid" "$url/get.php")"
  total="$(awk '/requests in/ {print $1}' "$out/$name.wrk")"
  non2xx="$(awk '/Non-2xx/ {print $NF}' "$out/$name.wrk")"; non2xx="${non2xx:-0}"
  rps="$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$out/$name.wrk")"
  p50="$(awk '$1 == "50%" {print $2}' "$out/$name.wrk")"
  p99="$(awk '$1 == "99%" {print $2}' "$out/$name.wrk")"
  ok=$((total - non2xx))
  lost=$((1 + ok - final))
  results+=("| $name | $final / $((1 + ok)) | $lost | $non2xx | $rps | $p50 | $p99 |")
  echo "$name: $total requests ($non2xx not 200), counter $final, lost $lost, $rps req/s, p50 $p50, p99 $p99"
  kill "$fpm_pid"; wait "$fpm_pid" 2>/dev/null || true; fpm_pid=""
  if [ -s "$tmp/php-errors.log" ]; then  # what PHP said (phpredis's lock failures, for one)
    mv "$tmp/php-errors.log" "$out/$name.php-errors.log"
  fi
  if [ "$name" = sessionbroker ]; then
    [ "$non2xx" -eq 0 ] || fail "sessionbroker: $non2xx requests did not answer 200"
    [ "$lost" -eq 0 ] || fail "sessionbroker lost $lost updates"
    [ "$total" -eq $((conns * per)) ] || fail "sessionbroker: wrk counted $total requests, expected $((conns * per))"
  fi
}

echo "== $conns connections x $per requests, one session cookie, per handler"
run_handler files -d session.save_handler=files -d session.save_path="$tmp/sessions"
run_handler redis-locking -d session.save_handler=redis -d session.save_path="unix://$tmp/redis.sock" \
  -d redis.session.locking_enabled=1
run_handler redis-nolock -d session.save_handler=redis -d session.save_path="unix://$tmp/redis.sock" \
  -d redis.session.locking_enabled=0
run_handler sessionbroker -d session.save_handler=sessionbroker

{
  echo "| handler | final counter / expected | lost updates | not 200 | req/s | p50 | p99 |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  printf '%s\n' "${results[@]}"
} >"$out/php.md"
echo
cat "$out/php.md"
