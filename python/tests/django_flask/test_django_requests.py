"""sessionbroker.django in requests: the lock per request across real processes, release on an
exception and on a 500 (the write is not saved), UpdateError, expiry and clear_expired, and
gunicorn --preload with 4 workers and 16 queued requests on one session.

The multi-process tests would catch a lock that is not held for the whole request: /incr reads the
counter, pauses, then writes it, so two unserialised requests lose an update and the final count
falls short. The release tests would catch a lock kept after the request: the other process's
lock then times out and the child fails.
"""
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from procs import fork, join

import sessionbroker


def counter(client):
    return int(client.get("/get").content.split()[0])


def new_session(djproject):
    """A test client whose session holds n = 1, and the session key."""
    from django.test import Client
    c = Client(raise_request_exception=False)
    assert c.get("/incr").status_code == 200
    return c, c.cookies["sessionid"].value


def take_in_other_process(key, expect_n, write_n):
    """In a child process: loads the session (waiting at most 5 s for its lock), checks it,
    writes, saves and releases. Exits non-zero if the lock was not given back in time."""
    from django.conf import settings
    from sessionbroker.django import SessionStore, release_locks
    settings.SESSIONBROKER_LOCK_TIMEOUT = 5
    s = SessionStore(key)
    assert s.get("n") == expect_n, s.get("n")
    s["n"] = write_n
    s.save()
    release_locks()


def test_requests_of_one_session_in_three_processes_lose_no_update(djproject):
    c, key = new_session(djproject)
    per_child = 40

    def hammer():
        from django.test import Client
        cc = Client()
        cc.cookies["sessionid"] = key
        for _ in range(per_child):
            assert cc.get("/incr", {"pause": "0.001"}).status_code == 200

    assert join([fork(hammer) for _ in range(3)]) == [0, 0, 0]
    assert counter(c) == 1 + 3 * per_child


def test_exception_in_view_discards_the_write_and_releases_the_lock(djproject):
    import sessionbroker.django as engine
    c, key = new_session(djproject)
    assert c.get("/boom").status_code == 500
    assert engine._held() == {}  # nothing left locked by this thread
    assert join([fork(take_in_other_process, key, 1, 2)]) == [0]  # n = 1: -1 was not saved
    assert counter(c) == 2


def test_500_response_discards_the_write_and_releases_the_lock(djproject):
    c, key = new_session(djproject)
    assert c.get("/fail500").status_code == 500
    assert join([fork(take_in_other_process, key, 1, 3)]) == [0]
    assert counter(c) == 3


def test_session_deleted_during_the_request_is_not_resurrected(djproject):
    c, key = new_session(djproject)
    # save() raises UpdateError, which SessionMiddleware turns into SessionInterrupted (400).
    assert c.get("/deleted_meanwhile").status_code == 400
    from sessionbroker.django import SessionStore
    assert not SessionStore().exists(key)


def test_logout_in_another_process_waits_for_the_request_then_destroys(djproject):
    c, key = new_session(djproject)

    def logout():
        from django.test import Client
        cc = Client()
        cc.cookies["sessionid"] = key
        assert cc.get("/logout").status_code == 200

    assert join([fork(logout)]) == [0]
    assert counter(c) == 0  # the cookie now names no session: a fresh, empty one


def test_broker_ttl_is_djangos_expiry_age(djproject):
    from django.conf import settings
    from sessionbroker.django import client
    c, key = new_session(djproject)
    with client().open("django:" + key).lock(timeout=5) as lock:
        remaining = lock.ttl_remaining()
    # Two weeks, not the broker's default of 30 minutes.
    assert settings.SESSION_COOKIE_AGE - 3600 < remaining <= settings.SESSION_COOKIE_AGE


def test_expired_session_loads_empty_and_is_destroyed(djproject):
    from sessionbroker.django import SessionStore, release_locks
    s = SessionStore()
    s["n"] = 5
    s.set_expiry(-10)  # a negative age: expired at once
    s.save()
    key = s.session_key
    release_locks()
    loaded = SessionStore(key)
    assert loaded.get("n") is None
    assert loaded.session_key is None  # a fresh session, never the expired key
    assert not loaded.exists(key)
    release_locks()


def test_clear_expired_destroys_only_expired_sessions(djproject):
    from sessionbroker.django import SessionStore, release_locks
    keys = {}
    for name, age in (("expired", -3600), ("live", 3600)):
        s = SessionStore()
        s["x"] = name
        s.set_expiry(age)
        s.save()
        keys[name] = s.session_key
    release_locks()
    SessionStore.clear_expired()
    assert not SessionStore().exists(keys["expired"])
    assert SessionStore().exists(keys["live"])


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=60)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def http_get(sock, url, key):
    conn = UnixHTTPConnection(sock)
    conn.request("GET", url, headers={"Cookie": "sessionid=" + key})
    resp = conn.getresponse()
    body = resp.read().decode()
    conn.close()
    return resp.status, body


def wait_serving(proc, sock):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "gunicorn exited with %s" % proc.returncode
        try:
            return http_get(sock, "/get", "none")
        except OSError:
            time.sleep(0.05)
    pytest.fail("gunicorn did not serve within 60 s")


def test_gunicorn_preload_4_workers_16_queued_requests_on_one_session(djproject, segment):
    gunicorn = "/usr/bin/gunicorn"
    if not os.path.exists(gunicorn):
        pytest.skip("gunicorn is not installed (Debian: gunicorn)")
    tmp = tempfile.mkdtemp()
    sock, keyfile = os.path.join(tmp, "g.sock"), os.path.join(tmp, "key")
    env = dict(os.environ, SB_SEGMENT=segment, SB_PRELOAD_KEYFILE=keyfile)
    here = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.Popen([sys.executable, gunicorn, "--preload", "--workers", "4", "--bind",
                             "unix:" + sock, "--chdir", here, "--log-level", "warning",
                             "djproject:application"], env=env)
    try:
        wait_serving(proc, sock)
        with open(keyfile) as f:
            key = f.read()  # the master's warm-up session: its lock is cached in the master
        results = [None] * 16

        def one(i):
            results[i] = http_get(sock, "/incr?pause=0.01", key)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [status for status, _ in results] == [200] * 16, results
        assert sorted(int(body.split()[0]) for _, body in results) == list(range(2, 18))
        assert http_get(sock, "/get", key)[1].split()[0] == "17"
    finally:
        proc.terminate()
        proc.wait(60)
        for f in (sock, keyfile):
            if os.path.exists(f):
                os.unlink(f)
        os.rmdir(tmp)
