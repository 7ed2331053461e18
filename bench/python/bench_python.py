#!/usr/bin/python3
"""The per-call cost of sessionbroker from Python (issue 9's "Bench"), for bench/run.sh's table.

    bench_python.py --build BUILD_DIR [--out DIR] [--quick]

Times lock(["cart"]) + get + put of 64 B + unlock on a cached process lock: through the Python
module (explicitly, and as a `with` block), through the C++ and the C API (the same loop in
BUILD_DIR/python/sb_python_cycle), and redis-py GET + SET of 64 B on a unix socket (when
python3-redis and redis-server are installed). Writes DIR/python.json in the suite's result format
(group s4.python.cycle), which sb_report puts in the table. Latencies are means over batches of
operations (the clock is read once per batch), then p50/p99 over the batches. Timings are never
checked. Starts its own session-broker (segment $SBBENCH_PREFIX-py, removed on exit) and
redis-server (a unix socket in a private directory, no TCP port, no persistence), and stops both.
Needs PYTHONPATH to name BUILD_DIR/python (bench/run.sh sets it).
"""
import argparse
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time

import sessionbroker

GROUP = "s4.python.cycle"
TITLE = "4. lock + get + put (64 B) + unlock on a cached lock, from Python, C++ and C; redis-py GET + SET"
VALUE = b"v" * 64


def start_broker(build, segment):
    """A session-broker on a fresh segment, once it reports ready."""
    r, w = os.pipe()
    proc = subprocess.Popen([f"{build}/broker/session-broker", "--segment", segment, "--remove-on-exit",
                             "--ready-fd", str(w), "--max-sessions", "64", "--attr-memory", "8M"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(w,))
    os.close(w)
    ok, _, _ = select.select([r], [], [], 10)
    ready = os.read(r, 16) if ok else b""
    os.close(r)
    if not ready.startswith(b"ready"):
        proc.kill()
        raise SystemExit("bench_python: session-broker did not start")
    return proc


def stats(label, ident, role, per_op_ns, note):
    v = sorted(per_op_ns)
    pick = lambda q: v[min(len(v) - 1, int(q * len(v)))]
    return {"group": GROUP, "group_title": TITLE, "id": ident, "role": role, "label": label, "unit": "ns",
            "seq": 0, "n": len(v), "min": v[0], "mean": sum(v) / len(v), "p50": pick(0.5), "p90": pick(0.9),
            "p99": pick(0.99), "p999": pick(0.999), "max": v[-1], "note": note}


def batches(count, ops, op):
    op(ops)  # warm up: the first lock takes the process lock, which then stays cached
    out = []
    for _ in range(count):
        t0 = time.perf_counter_ns()
        op(ops)
        out.append((time.perf_counter_ns() - t0) / ops)
    return out


def python_rows(store, count, ops):
    client = sessionbroker.Client.attach(store)
    session, _ = client.open_or_create("cycle-python")
    names = ["cart"]

    def explicit(n):
        lock = session.lock
        for _ in range(n):
            l = lock(names, timeout=0.1)
            l.get("cart")
            l["cart"] = VALUE
            l.unlock()

    def with_block(n):
        for _ in range(n):
            with session.lock(names, timeout=0.1) as l:
                l.get("cart")
                l["cart"] = VALUE

    rows = [stats("sessionbroker Python: lock() + get() + lock[k] = v + unlock()", "sb.python", "sb",
                  batches(count, ops, explicit), f"batches of {ops}"),
            stats("sessionbroker Python: the same as a with block", "sb.python_with", "sb",
                  batches(count, ops, with_block), f"batches of {ops}")]
    client.detach()
    return rows


def native_rows(build, store, count, ops):
    out = subprocess.run([f"{build}/python/sb_python_cycle", store, str(count), str(ops)], check=True,
                         capture_output=True, text=True).stdout
    got = json.loads(out)
    return [stats("sessionbroker C++ API: the same loop", "base.cxx", "base", got["cxx"], f"batches of {ops}"),
            stats("sessionbroker C API: the same loop", "base.c", "base", got["c"], f"batches of {ops}"),
            stats("sessionbroker C API: the same, a try-lock first (as the module locks)", "base.c_try", "base",
                  got["c_try"], f"batches of {ops}")]


def redis_rows(count, ops, skipped):
    try:
        import redis
    except ImportError:
        skipped.append(f"{GROUP} peer.redis_py_unix: python3-redis not installed (bench/setup.sh installs it)")
        return []
    server = shutil.which("redis-server")
    if server is None:
        skipped.append(f"{GROUP} peer.redis_py_unix: redis-server not installed (bench/setup.sh installs it)")
        return []
    tmp = tempfile.mkdtemp(prefix="sbbench-py-redis.", dir=os.environ.get("SBBENCH_TMP"))
    sock = os.path.join(tmp, "redis.sock")
    proc = subprocess.Popen([server, "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no",
                             "--dir", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        r = redis.Redis(unix_socket_path=sock)
        deadline = time.monotonic() + 10
        while True:
            try:
                r.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

        def get_set(n):
            for _ in range(n):
                r.get("cart")
                r.set("cart", VALUE)

        per_op = batches(count, ops, get_set)
        return [stats("redis-py GET + SET (64 B), unix socket", "peer.redis_py_unix", "peer", per_op,
                      f"batches of {ops}; Redis {r.info('server')['redis_version']}")]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True, help="the build directory (session-broker, python/)")
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--quick", action="store_true", help="a few batches only (a smoke run)")
    args = ap.parse_args()
    count = 20 if args.quick else 300
    segment = f"{os.environ.get('SBBENCH_PREFIX', 'sbbench-' + str(os.getpid()))}-py"
    broker = start_broker(args.build, segment)
    skipped = []
    try:
        rows = python_rows(segment, count, 2000) + native_rows(args.build, segment, count, 20000)
        rows += redis_rows(count // 4 or 1, 200, skipped)
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(10)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "python.json"), "w") as f:
        json.dump({"sbbench": 1, "program": "bench_python.py", "results": rows, "skipped": skipped}, f, indent=1)
    for row in rows:
        print(f"{row['id']:22} p50 {row['p50']:10.1f} ns   p99 {row['p99']:10.1f} ns   ({row['label']})")


if __name__ == "__main__":
    main()
