#!/usr/bin/env bash
# A 3-member etcd cluster on 127.0.0.1 for tests, CI and trying the etcd backend by hand.
#
#   scripts/etcd-cluster.sh start DIR [BASEPORT]  # members 0..2; client ports BASEPORT+0..2, peer
#                                                 # ports BASEPORT+10..12 (free ports when omitted);
#                                                 # returns once every member is healthy with a leader
#   scripts/etcd-cluster.sh endpoints DIR         # 127.0.0.1:P0,127.0.0.1:P1,127.0.0.1:P2
#   scripts/etcd-cluster.sh leader DIR            # the leader's index (0..2), once one is elected
#   scripts/etcd-cluster.sh kill DIR N            # kill -9 member N (its data stays)
#   scripts/etcd-cluster.sh restart DIR N         # start member N again on its data; waits for health
#   scripts/etcd-cluster.sh pause DIR N | resume DIR N   # SIGSTOP / SIGCONT: a member cut off, cheaply
#   scripts/etcd-cluster.sh pid DIR N
#   scripts/etcd-cluster.sh stop DIR              # kill -9 every member; removes DIR and the data
#
# Data lives on tmpfs (/dev/shm/sbetcd-*), so writes cost no disk sync; heartbeat 25 ms and
# election timeout 250 ms make failover take a few hundred milliseconds. DIR holds the pids, the
# ports, the members' logs and the path of the data. With SBETCD_OWNER_PID set, a watchdog kills
# the cluster and removes its data when that process exits (a test that crashed leaves nothing).
set -euo pipefail
ETCD="${ETCD:-/usr/bin/etcd}"
ETCDCTL="${ETCDCTL:-/usr/bin/etcdctl}"
cmd="${1:-}"; dir="${2:-}"
[ -n "$cmd" ] && [ -n "$dir" ] || { sed -n '2,13p' "$0" >&2; exit 2; }

die() { echo "etcd-cluster: $*" >&2; exit 1; }
member_pid() { cat "$dir/m$1.pid" 2>/dev/null || true; }
# Running, and not a zombie waiting for a reaper (kill -0 succeeds on those).
running() { [ -n "$1" ] && [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null; }
alive() { running "$(member_pid "$1")"; }
client_port() { echo $(( $(cat "$dir/baseport") + $1 )); }
peer_port() { echo $(( $(cat "$dir/baseport") + 10 + $1 )); }
endpoints() { echo "127.0.0.1:$(client_port 0),127.0.0.1:$(client_port 1),127.0.0.1:$(client_port 2)"; }
check_n() { [[ "${1:-}" =~ ^[012]$ ]] || die "member index must be 0, 1 or 2"; }

# A base port whose 13 ports are all free for listening on 127.0.0.1 (random, checked with ss).
free_base() {
  local base i used
  used=$(ss -Htan | awk '{print $4}' | sed 's/.*://' | sort -u)
  for _ in $(seq 1 200); do
    base=$(( 20000 + (RANDOM % 2000) * 10 ))
    for i in $(seq 0 12); do grep -qx "$(( base + i ))" <<<"$used" && continue 2; done
    echo "$base"; return 0
  done
  die "no free port range found"
}

launch() {  # launch N: start member N in the background, detached from our stdio
  local n=$1 data; data=$(cat "$dir/datadir")
  local cluster="m0=http://127.0.0.1:$(peer_port 0),m1=http://127.0.0.1:$(peer_port 1),m2=http://127.0.0.1:$(peer_port 2)"
  setsid "$ETCD" --name "m$n" --data-dir "$data/m$n" \
    --listen-client-urls "http://127.0.0.1:$(client_port "$n")" \
    --advertise-client-urls "http://127.0.0.1:$(client_port "$n")" \
    --listen-peer-urls "http://127.0.0.1:$(peer_port "$n")" \
    --initial-advertise-peer-urls "http://127.0.0.1:$(peer_port "$n")" \
    --initial-cluster "$cluster" --initial-cluster-token "$(basename "$data")" --initial-cluster-state new \
    --heartbeat-interval 25 --election-timeout 250 \
    --logger zap --log-outputs "$dir/m$n.log" --log-level warn \
    </dev/null >>"$dir/m$n.out" 2>&1 &
  echo $! >"$dir/m$n.pid"
}

# Waits (up to 30 s) until every live member answers a linearizable read: only possible with a
# leader, so this is "healthy with a leader".
wait_healthy() {
  local deadline=$(( $(date +%s) + 30 )) n ok
  while :; do
    ok=1
    for n in 0 1 2; do
      alive "$n" || continue
      "$ETCDCTL" --endpoints "127.0.0.1:$(client_port "$n")" --command-timeout=1s get --consistency=l sbetcd-probe \
        >/dev/null 2>&1 || { ok=0; break; }
    done
    [ "$ok" = 1 ] && return 0
    [ "$(date +%s)" -ge "$deadline" ] && die "cluster in $dir not healthy after 30 s (logs: $dir/m*.log)"
    sleep 0.05
  done
}

watchdog() {  # kills the members and removes the data once $1 has exited
  local owner=$1
  ( trap '' HUP
    while running "$owner" && [ -d "$dir" ]; do sleep 0.5; done
    [ -d "$dir" ] && "$0" stop "$dir" >/dev/null 2>&1 || true ) </dev/null >/dev/null 2>&1 &
}

case "$cmd" in
  start)
    [ -e "$dir/baseport" ] && die "$dir already holds a cluster"
    mkdir -p "$dir"
    echo "${3:-$(free_base)}" >"$dir/baseport"
    mktemp -d /dev/shm/sbetcd-XXXXXX >"$dir/datadir"
    for n in 0 1 2; do launch "$n"; done
    [ -n "${SBETCD_OWNER_PID:-}" ] && watchdog "$SBETCD_OWNER_PID"
    wait_healthy
    endpoints ;;
  endpoints) endpoints ;;
  pid) check_n "${3:-}"; member_pid "$3" ;;
  leader)  # waits up to 10 s for an election in progress
    deadline=$(( $(date +%s) + 10 ))
    while [ "$(date +%s)" -lt "$deadline" ]; do
      for n in 0 1 2; do
        alive "$n" || continue
        line=$("$ETCDCTL" --endpoints "127.0.0.1:$(client_port "$n")" --command-timeout=1s endpoint status 2>/dev/null) || continue
        [ "$(awk -F', ' '{print $5}' <<<"$line")" = true ] && { echo "$n"; exit 0; }
      done
      sleep 0.05
    done
    die "no leader among the live members" ;;
  kill)
    check_n "${3:-}"; p=$(member_pid "$3")
    [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true
    while running "$p"; do sleep 0.01; done ;;
  restart)
    check_n "${3:-}"; alive "$3" && die "member $3 is running"
    launch "$3"; wait_healthy ;;
  pause) check_n "${3:-}"; kill -STOP "$(member_pid "$3")" ;;
  resume) check_n "${3:-}"; kill -CONT "$(member_pid "$3")" ;;
  stop)
    [ -d "$dir" ] || exit 0
    for n in 0 1 2; do
      p=$(member_pid "$n"); [ -n "$p" ] || continue
      kill -9 "$p" 2>/dev/null || true
      while running "$p"; do sleep 0.01; done
    done
    data=$(cat "$dir/datadir" 2>/dev/null || true)
    case "$data" in /dev/shm/sbetcd-*) rm -rf "$data" ;; esac
    rm -rf "$dir" ;;
  *) die "unknown command $cmd (start, stop, kill, restart, pause, resume, leader, endpoints, pid)" ;;
esac
