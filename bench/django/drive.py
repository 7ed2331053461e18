#!/usr/bin/env python3
"""Django's session backends under Debian's gunicorn (4 sync workers), against sessionbroker.

    bench/django/drive.py --build DIR [--quick] [--out DIR] [--backends db,cache,...] [--rounds R]
                          [--threads N] [--requests N] [--many-requests N] [--spin K]

(bench/django/run.sh installs, builds and calls it.) Defaults: 16 threads, 2000 requests on one
session, 4000 on many sessions, 3 rounds; --quick: 4 threads, 100 and 100 requests, 1 round.

For each backend of examples/django_app (db on SQLite, cache on django-redis, signed_cookies,
sessionbroker) it starts what the backend needs (a migrated SQLite file; a redis-server on a unix
socket, persistence off; a session-broker from the build tree), then gunicorn with 4 sync workers
on 127.0.0.1:<free port>, and runs two phases with a Python client: threads, one http.client
connection each (gunicorn's sync workers close the connection after every response, so the client
reconnects per request, as any client of a sync worker does).

  one session    /start makes one session; --threads threads send --requests /incr in all, every
                 one with that session's cookie, from one cookie jar shared by the threads (one
                 browser, many tabs): a request carries the jar's cookie at the time it is sent, and
                 every Set-Cookie of a response replaces it. For db, cache and sessionbroker the
                 cookie never changes (the session key); for signed_cookies the cookie IS the session,
                 so the jar ends with the cookie of whichever response came last. Then /get with the
                 jar's cookie: lost updates = /incr answered 200 - final counter.
  many sessions  each thread makes its own session (one per connection: no contention) and sends
                 its share of --many-requests /incr; CPU per request = utime+stime of the gunicorn
                 master and workers (/proc/PID/stat, before and after) / requests, and separately
                 the CPU of the process that serves the store (redis-server, session-broker).
                 Each thread checks its own counter at the end (lost updates, expected 0 for all).

Every backend runs --rounds times, in an order rotated each round (the load of a shared machine
drifts); the table gives the median of the rounds, lost updates per round. Latency is the client's:
request sent to response read, connect included. Writes DIR/django.json (raw) and DIR/django.md
(the tables, also printed). Load average is recorded at start and end.
Bounded: every socket has a 30 s timeout, a phase stops sending after --phase-limit seconds.
Cleans up on any exit, Ctrl-C and SIGTERM included: children run in their own process group (a
terminal's Ctrl-C reaches only this driver, which stops them in order) and get SIGKILL if the
driver dies (PR_SET_PDEATHSIG); the temporary directory (SQLite file, redis socket, logs) and the
segment ($SBBENCH_DJANGO_SEGMENT, else sbbench-django-<pid>) are removed. Timings are never checked: exit 0 means it ran and
every backend answered.
"""
import argparse
import ctypes
import http.client
import http.cookies
import json
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "examples" / "django_app"
PYTHON = "/usr/bin/python3"  # Debian's, with Debian's gunicorn, Django and django-redis
BACKENDS = ["db", "cache", "signed_cookies", "sessionbroker"]
WORKERS = 4
CLK_TCK = os.sysconf("SC_CLK_TCK")
COOKIE = "sessionid"
SOCKET_TIMEOUT = 30.0

_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    """preexec_fn: SIGKILL when the driver dies (PR_SET_PDEATHSIG = 1)."""
    _libc.prctl(1, signal.SIGKILL, 0, 0, 0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), seconds; None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of proc(5)


def children(pid):
    """Pids of the direct children of pid."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        if ppid == pid:
            out.append(int(entry))
    return sorted(out)


class Procs:
    """The children the driver started, stopped in reverse order (SIGTERM, then SIGKILL)."""

    def __init__(self):
        self.items = []  # (name, Popen)

    def start(self, name, argv, **kw):
        p = subprocess.Popen(argv, start_new_session=True, preexec_fn=_die_with_parent,
                             stdin=subprocess.DEVNULL, **kw)
        self.items.append((name, p))
        return p

    def stop(self, p, grace=10.0):
        """SIGTERM to p, SIGKILL to it and its children after `grace` seconds."""
        if p.poll() is None:
            kids = children(p.pid)
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                for pid in [p.pid] + kids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                p.wait()
            # gunicorn's workers leave with their master; do not leave one behind regardless
            for pid in kids:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    continue
                time.sleep(0.2)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.items = [(n, q) for n, q in self.items if q is not p]

    def stop_all(self):
        for _, p in reversed(list(self.items)):
            self.stop(p, grace=5.0)


def wait_for(cond, what, timeout=30.0, proc=None, log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        try:
            if cond():
                return
        except OSError:
            pass
        time.sleep(0.05)
    tail = ""
    if log is not None and os.path.exists(log):
        with open(log, errors="replace") as f:
            tail = f.read()[-2000:]
    raise RuntimeError("%s did not come up%s\n%s" % (
        what, "" if proc is None or proc.poll() is None else " (exited %s)" % proc.returncode, tail))


def start_redis(procs, tmp):
    sock = os.path.join(tmp, "redis.sock")
    log = os.path.join(tmp, "redis.log")
    p = procs.start("redis-server", [
        "/usr/bin/redis-server", "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
        "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", log,
        "--dir", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def pong():
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(1)
            s.connect(sock)
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    wait_for(pong, "redis-server", proc=p, log=log)
    return p, "unix://%s?db=0" % sock


def start_broker(procs, tmp, build, segment):
    log = open(os.path.join(tmp, "broker.log"), "wb")
    r, w = os.pipe()
    p = procs.start("session-broker", [
        str(build / "broker" / "session-broker"), "--segment", segment, "--remove-on-exit",
        "--ready-fd", str(w)], pass_fds=(w,), stdout=log, stderr=subprocess.STDOUT)
    os.close(w)
    log.close()
    try:
        ready, _, _ = select.select([r], [], [], 30)
        line = os.read(r, 64) if ready else b""
    finally:
        os.close(r)
    if not line.startswith(b"ready"):
        raise RuntimeError("session-broker did not start: see its log")
    return p


def app_env(build, backend, extra):
    env = dict(os.environ)
    env.update({
        "PYTHONPATH": os.pathsep.join([str(APP), str(build / "python")]),
        "PYTHONDONTWRITEBYTECODE": "1",
        "DJANGO_SETTINGS_MODULE": "proof.settings",
        "SB_DJANGO_BACKEND": backend,
    })
    env.update(extra)
    return env


def start_gunicorn(procs, tmp, env):
    port = free_port()
    log = os.path.join(tmp, "gunicorn.log")
    p = procs.start("gunicorn", [
        PYTHON, "-m", "gunicorn", "--workers", str(WORKERS), "--worker-class", "sync",
        "--bind", "127.0.0.1:%d" % port, "--log-level", "warning", "--error-logfile", log,
        "--graceful-timeout", "5", "proof.wsgi:application"],
        env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def up():
        if len(children(p.pid)) < WORKERS:
            return False
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            return request(conn, "/get", None)[0] == 200
        finally:
            conn.close()
    wait_for(up, "gunicorn", timeout=60, proc=p, log=log)
    return p, port


def request(conn, path, cookie):
    """(status, body, the response's new sessionid cookie or None, seconds). Raises OSError and
    http.client's errors; the caller then drops the connection."""
    headers = {"Cookie": "%s=%s" % (COOKIE, cookie)} if cookie else {}
    t0 = time.perf_counter()
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    body = resp.read()
    dt = time.perf_counter() - t0
    new = None
    for h in resp.headers.get_all("Set-Cookie") or []:
        c = http.cookies.SimpleCookie()
        c.load(h)
        if COOKIE in c:
            new = c[COOKIE].value
    return resp.status, body, new, dt


class Jar:
    """One browser's cookie: shared by its tabs; every response's Set-Cookie replaces it."""

    def __init__(self, value=None):
        self._value = value
        self._lock = threading.Lock()

    def get(self):
        with self._lock:
            return self._value

    def set(self, value):
        if value is not None:
            with self._lock:
                self._value = value


class Client:
    """One client thread's connection (reconnects after an error or a closed connection)."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def send(self, path, jar):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=SOCKET_TIMEOUT)
        try:
            status, body, new, dt = request(self.conn, path, jar.get())
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            return None, None, None
        jar.set(new)
        return status, body, dt

    def close(self):
        if self.conn is not None:
            self.conn.close()


def pct(sorted_values, q):
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def run_threads(n_threads, fn):
    """Runs fn(i) in n_threads daemon threads and joins them; returns (wall seconds, results)."""
    results = [None] * n_threads
    errors = []

    def body(i):
        try:
            results[i] = fn(i)
        except BaseException as e:  # surfaced below, after every thread ended
            errors.append(e)
    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n_threads)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return wall, results


def shares(total, n):
    return [total // n + (1 if i < total % n else 0) for i in range(n)]


def summarise(lat, ok, wall):
    lat = sorted(lat)
    return {"ok": ok, "seconds": wall, "rps": ok / wall if wall > 0 else None,
            "p50_ms": pct(lat, 0.50) * 1e3 if lat else None,
            "p99_ms": pct(lat, 0.99) * 1e3 if lat else None}


def incr_path(spin):
    return "/incr?spin=%d" % spin if spin else "/incr"


def warm_up(port, n_threads, per_thread):
    """Fresh sessions through every worker (first-request imports, the broker attach): untimed."""
    def fn(i):
        c, jar = Client(port), Jar()
        c.send("/start", jar)
        for _ in range(per_thread):
            c.send("/incr", jar)
        c.close()
    run_threads(n_threads, fn)


def phase_one_session(port, n_threads, n_requests, spin, limit):
    starter, jar = Client(port), Jar()
    status, _, _ = starter.send("/start", jar)
    starter.close()
    if status != 200 or jar.get() is None:
        raise RuntimeError("/start failed (status %s)" % status)
    deadline = time.monotonic() + limit
    path = incr_path(spin)
    plan = shares(n_requests, n_threads)

    def fn(i):
        c, lat, ok, bad = Client(port), [], 0, {}
        for _ in range(plan[i]):
            if time.monotonic() > deadline:
                break
            status, _, dt = c.send(path, jar)
            if status == 200:
                ok += 1
                lat.append(dt)
            else:
                bad[str(status)] = bad.get(str(status), 0) + 1
        c.close()
        return lat, ok, bad
    wall, res = run_threads(n_threads, fn)
    lat = [x for r in res for x in r[0]]
    ok = sum(r[1] for r in res)
    errors = {}
    for r in res:
        for k, v in r[2].items():
            errors[k] = errors.get(k, 0) + v
    reader = Client(port)
    status, body, _ = reader.send("/get", jar)
    reader.close()
    final = int(body) if status == 200 else None
    out = summarise(lat, ok, wall)
    out.update({"threads": n_threads, "requests": n_requests, "errors": errors, "final": final,
                "lost": ok - final if final is not None else None})
    return out


def phase_many_sessions(port, n_threads, n_requests, spin, limit, cpu_pids):
    """cpu_pids: {"gunicorn": [pids], "store": [pids]}."""
    plan = shares(n_requests, n_threads)
    path = incr_path(spin)
    ready = threading.Barrier(n_threads + 1)
    go = threading.Event()
    deadline = [None]

    def fn(i):
        c, jar = Client(port), Jar()
        status, _, _ = c.send("/start", jar)
        ready.wait()
        go.wait()
        lat, ok, bad = [], 0, {}
        if status == 200:
            for _ in range(plan[i]):
                if time.monotonic() > deadline[0]:
                    break
                status2, _, dt = c.send(path, jar)
                if status2 == 200:
                    ok += 1
                    lat.append(dt)
                else:
                    bad[str(status2)] = bad.get(str(status2), 0) + 1
        t_end = time.perf_counter()
        st, body, _ = c.send("/get", jar)
        final = int(body) if st == 200 else None
        c.close()
        return lat, ok, bad, final, t_end

    results = [None] * n_threads
    errs = []

    def body(i):
        try:
            results[i] = fn(i)
        except BaseException as e:
            errs.append(e)
            ready.abort()
    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n_threads)]
    for t in threads:
        t.start()
    ready.wait()  # every thread has its session: the timed part starts
    before = {k: [cpu_seconds(p) for p in v] for k, v in cpu_pids.items()}
    client_before = os.times()
    deadline[0] = time.monotonic() + limit
    t0 = time.perf_counter()
    go.set()
    for t in threads:
        t.join()
    if errs:
        raise errs[0]
    wall = max(r[4] for r in results) - t0
    after = {k: [cpu_seconds(p) for p in v] for k, v in cpu_pids.items()}
    client_after = os.times()
    lat = [x for r in results for x in r[0]]
    ok = sum(r[1] for r in results)
    errors = {}
    for r in results:
        for k, v in r[2].items():
            errors[k] = errors.get(k, 0) + v
    out = summarise(lat, ok, wall)
    out.update({"threads": n_threads, "sessions": n_threads, "requests": n_requests,
                "errors": errors,
                "lost": sum(r[1] - r[3] for r in results if r[3] is not None),
                "unreadable_sessions": sum(1 for r in results if r[3] is None)})
    for k in cpu_pids:
        if any(x is None for x in before[k] + after[k]):
            out["cpu_%s_s" % k] = None  # a process went away meanwhile (a worker restart)
        else:
            out["cpu_%s_s" % k] = sum(a - b for a, b in zip(after[k], before[k]))
        out["cpu_%s_ms_per_request" % k] = (out["cpu_%s_s" % k] * 1e3 / ok
                                            if out["cpu_%s_s" % k] is not None and ok else None)
    client_cpu = ((client_after.user - client_before.user)
                  + (client_after.system - client_before.system))
    out["cpu_client_ms_per_request"] = client_cpu * 1e3 / ok if ok else None
    return out


def run_backend(backend, args, tmp_root, procs):
    tmp = tempfile.mkdtemp(prefix=backend + "-", dir=tmp_root)
    store = []
    extra = {}
    if backend == "db":
        extra["SB_DJANGO_SQLITE"] = os.path.join(tmp, "sessions.sqlite3")
        env = app_env(args.build, backend, extra)
        subprocess.run([PYTHON, str(APP / "manage.py"), "migrate", "-v", "0"], env=env, check=True,
                       timeout=120, stdin=subprocess.DEVNULL)
    elif backend == "cache":
        redis, extra["SB_DJANGO_REDIS"] = start_redis(procs, tmp)
        store = [redis]
    elif backend == "sessionbroker":
        extra["SB_DJANGO_SEGMENT"] = args.segment
        store = [start_broker(procs, tmp, args.build, args.segment)]
    env = app_env(args.build, backend, extra)
    result = {"backend": backend}
    try:
        gunicorn, port = start_gunicorn(procs, tmp, env)
        workers = children(gunicorn.pid)
        result["workers"] = len(workers)
        warm_up(port, args.threads, args.warmup)
        print("  round %d  %-15s one session: %d requests from %d threads" % (
            args.round, backend, args.requests, args.threads),
              flush=True)
        result["one_session"] = phase_one_session(port, args.threads, args.requests, args.spin,
                                                  args.phase_limit)
        print("  round %d  %-15s many sessions: %d requests, one session per thread (%d)" % (
            args.round, backend, args.many_requests, args.threads), flush=True)
        cpu_pids = {"gunicorn": [gunicorn.pid] + workers, "store": [p.pid for p in store]}
        result["many_sessions"] = phase_many_sessions(port, args.threads, args.many_requests,
                                                      args.spin, args.phase_limit, cpu_pids)
        result["workers_after"] = len(children(gunicorn.pid))
        result["workers_restarted"] = sorted(children(gunicorn.pid)) != sorted(workers)
        procs.stop(gunicorn)
    finally:
        for p in store:
            procs.stop(p)
    return result


def fmt_ms(x):
    if x is None:
        return "-"
    if x == 0:
        return "0 ms"  # not one clock tick (1/CLK_TCK s) in the whole phase
    return "%.1f ms" % x if x >= 10 else "%.2f ms" % x


def fmt_errors(e):
    return ", ".join("%s×%s" % (v, k) for k, v in sorted(e.items())) if e else "0"


STORE_OF = {"db": "(in gunicorn: SQLite)", "cache": "redis-server", "signed_cookies": "(none)",
            "sessionbroker": "session-broker"}


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def merged_errors(rounds):
    out = {}
    for o in rounds:
        for k, v in o["errors"].items():
            out[k] = out.get(k, 0) + v
    return out


def table(by_backend, meta):
    """by_backend: {backend: [result of each round]}. Figures are medians over the rounds; lost
    updates and final counters are listed per round, errors summed."""
    lines = [
        "Django %s, gunicorn %s (%d sync workers), %s; client: %d threads, http.client, one connection"
        " each (sync workers close it after every response); %s run, %d round(s), backends in rotated"
        " order each round, figures are the median of the rounds; /incr spin=%d." % (
            meta["django"], meta["gunicorn"], WORKERS, meta["python"], meta["threads"], meta["mode"],
            meta["rounds"], meta["spin"]),
        "Machine: %s; SQLite file on %s. Load average at start %s, at end %s." % (
            meta["machine"], meta["tmp_filesystem"], meta["loadavg_start"], meta["loadavg_end"]),
        "",
        "One session: %d concurrent /incr from %d threads sharing one cookie jar:" % (
            meta["requests"], meta["threads"]),
        "",
        "| backend | final counter / answered 200, per round | lost updates, per round | errors"
        " | req/s | p50 | p99 |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for b, rounds in by_backend.items():
        o = [r["one_session"] for r in rounds]
        lines.append("| %s | %s | %s | %s | %.0f | %s | %s |" % (
            b, ", ".join("%s / %d" % (x["final"], x["ok"]) for x in o),
            ", ".join(str(x["lost"]) for x in o), fmt_errors(merged_errors(o)),
            med(x["rps"] for x in o) or 0, fmt_ms(med(x["p50_ms"] for x in o)),
            fmt_ms(med(x["p99_ms"] for x in o))))
    lines += [
        "",
        "Many sessions: %d /incr, one session per client thread (%d sessions, no contention); CPU per"
        " request = utime+stime (/proc/PID/stat) / requests answered 200:" % (
            meta["many_requests"], meta["threads"]),
        "",
        "| backend | lost updates | errors | req/s | p50 | p99 | CPU/request: gunicorn master +"
        " workers | store process | total |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b, rounds in by_backend.items():
        m = [r["many_sessions"] for r in rounds]
        g = med(x["cpu_gunicorn_ms_per_request"] for x in m)
        s = med(x["cpu_store_ms_per_request"] for x in m) if b in ("cache", "sessionbroker") else None
        store = "%s %s" % (STORE_OF[b], fmt_ms(s)) if s is not None else STORE_OF[b]
        total = med((x["cpu_gunicorn_ms_per_request"] or 0) + (x["cpu_store_ms_per_request"] or 0)
                    for x in m if x["cpu_gunicorn_ms_per_request"] is not None)
        lines.append("| %s | %d | %s | %.0f | %s | %s | %s | %s | %s |" % (
            b, sum(x["lost"] for x in m), fmt_errors(merged_errors(m)), med(x["rps"] for x in m) or 0,
            fmt_ms(med(x["p50_ms"] for x in m)), fmt_ms(med(x["p99_ms"] for x in m)), fmt_ms(g),
            store, fmt_ms(total)))
    return "\n".join(lines) + "\n"


def filesystem(path):
    """Type of the filesystem holding path (the SQLite file's: fsync cost), from /proc/mounts."""
    best, kind = "", "?"
    with open("/proc/mounts") as f:
        for line in f:
            mnt, typ = line.split()[1:3]
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
                best, kind = mnt, typ
    return "%s (%s)" % (kind, best)


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return "%d cores, %s, kernel %s" % (os.cpu_count(), model, os.uname().release)


def versions():
    out = subprocess.run([PYTHON, "-c", "import django, gunicorn, sys; print(django.get_version());"
                          " print(gunicorn.__version__); print(sys.version.split()[0])"],
                         capture_output=True, text=True, check=True, timeout=60).stdout.split()
    return {"django": out[0], "gunicorn": out[1], "python": "Python " + out[2]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", required=True, type=Path,
                    help="build tree with broker/session-broker and python/sessionbroker")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "django")
    ap.add_argument("--quick", action="store_true", help="a smoke run: few requests per backend")
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--requests", type=int, default=2000, help="one-session phase, in all")
    ap.add_argument("--many-requests", type=int, default=4000, help="many-sessions phase, in all")
    ap.add_argument("--warmup", type=int, default=10, help="untimed requests per thread first")
    ap.add_argument("--rounds", type=int, default=3,
                    help="every backend this many times, in rotated order (the machine's load drifts)")
    ap.add_argument("--spin", type=int, default=0, help="CPU-only loop iterations in /incr")
    ap.add_argument("--phase-limit", type=float, default=300.0,
                    help="seconds; a phase stops sending after")
    args = ap.parse_args()
    if args.quick:
        args.threads, args.requests, args.many_requests, args.warmup, args.rounds = 4, 100, 100, 2, 1
    backends = [b for b in args.backends.split(",") if b]
    for b in backends:
        if b not in BACKENDS:
            ap.error("unknown backend %r (%s)" % (b, ", ".join(BACKENDS)))
    args.build = args.build.resolve()
    for need in (args.build / "broker" / "session-broker", args.build / "python" / "sessionbroker"):
        if "sessionbroker" in backends and not need.exists():
            ap.error("%s is missing: build session-broker and sessionbroker_python first" % need)
    # run.sh names it after itself, so its trap can remove it even if this driver is killed
    args.segment = os.environ.get("SBBENCH_DJANGO_SEGMENT") or "sbbench-django-%d" % os.getpid()

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    procs = Procs()
    tmp_root = tempfile.mkdtemp(prefix="sbbench-django-")
    results = []
    meta = {"date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()), "loadavg_start": loadavg(),
            "machine": machine(), "mode": "quick" if args.quick else "full", "threads": args.threads,
            "rounds": args.rounds, "requests": args.requests, "many_requests": args.many_requests,
            "spin": args.spin,
            "warmup_per_thread": args.warmup, "tmp_filesystem": filesystem(tmp_root)}
    status = 0
    try:
        meta.update(versions())
        print("django bench: %s run, load average %s" % (meta["mode"], meta["loadavg_start"]),
              flush=True)
        for r in range(args.rounds):
            order = backends[r % len(backends):] + backends[:r % len(backends)]
            for b in order:
                args.round = r + 1
                res = run_backend(b, args, tmp_root, procs)
                res["round"] = r + 1
                results.append(res)
        meta["loadavg_end"] = loadavg()
        args.out.mkdir(parents=True, exist_ok=True)
        with open(args.out / "django.json", "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)
        by_backend = {b: [x for x in results if x["backend"] == b] for b in backends}
        text = table(by_backend, meta)
        with open(args.out / "django.md", "w") as f:
            f.write(text)
        print()
        print(text, end="")
        for r in results:
            if r["many_sessions"]["ok"] == 0 or r["one_session"]["final"] is None:
                print("%s: no answers" % r["backend"], file=sys.stderr)
                status = 1
    except KeyboardInterrupt:
        print("interrupted: stopping", file=sys.stderr)
        status = 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the cleanup
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        procs.stop_all()
        shutil.rmtree(tmp_root, ignore_errors=True)
        try:
            os.unlink("/dev/shm/" + args.segment)
        except FileNotFoundError:
            pass
    return status


if __name__ == "__main__":
    sys.exit(main())
