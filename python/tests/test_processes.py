"""Threads and processes: the GIL is released while a lock waits, revoke callbacks arrive from
the library's revoke thread, a forked child attaches again by itself, and two processes
incrementing one counter lose no update. Every other process here is a real one (os.fork)."""
import os
import sys
import threading
import time

import pytest

import sessionbroker
from conftest import run_child, wait_child


def hold_in_child(store, sid, go_path_r, ready_w):
    """Child: holds sid's whole lock until a byte arrives on go_path_r, then writes and unlocks."""
    c = sessionbroker.Client.attach(store)
    with c.open(sid).lock(None, timeout=5) as lock:
        lock["by"] = b"child"
        os.write(ready_w, b"r")
        os.read(go_path_r, 1)
    c.detach()


def test_other_python_threads_run_while_a_lock_waits(store, client):
    # The child holds the lock until this test's main thread tells it to let go. A waiter thread
    # asks for the lock with a 5 s timeout. If the wait held the GIL, the main thread could not
    # run until the waiter timed out; it must instead count, signal the child, and the waiter
    # must then be granted (not time out).
    client.create("gil")
    go_r, go_w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = run_child(hold_in_child, store, "gil", go_r, ready_w)
    assert os.read(ready_r, 1) == b"r"
    session = client.open("gil")
    result = {}

    def waiter():
        try:
            with session.lock(None, timeout=5) as lock:
                result["value"] = lock["by"]
        except sessionbroker.Error as e:
            result["error"] = e

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.2)  # the waiter is now inside lock(), waiting
    count = sum(1 for _ in range(200_000))  # pure Python: needs the GIL
    os.write(go_w, str(count).encode()[:1])
    t.join()
    assert wait_child(pid) == 0
    assert result == {"value": b"child"}  # granted, not Timeout


def test_revoke_callback_runs_on_the_revoke_thread_with_kind_id_and_token(store, client):
    events = []
    done = threading.Event()

    def on_revoke(kind, session_id, token):
        events.append((kind, session_id, token, threading.get_ident()))
        if kind == "released":
            done.set()

    client.on_revoke(on_revoke)
    session = client.create("rv")
    with session.lock(["a"]) as lock:
        token = lock.token
    # The process lock is cached; a child asking for it makes the revoke thread give it back.
    pid = run_child(lambda: sessionbroker.Client.attach(store).open("rv").lock(["a"], timeout=5).unlock())
    assert wait_child(pid) == 0
    assert done.wait(5)
    kinds = [e[0] for e in events]
    assert kinds[:2] == ["requested", "released"]
    assert all(e[1] == "rv" and e[2] == token for e in events)
    assert all(e[3] != threading.main_thread().ident for e in events)
    client.on_revoke(None)


def test_an_exception_in_the_revoke_callback_is_reported_not_propagated(store, client, monkeypatch):
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(u.exc_value))

    def bad_callback(kind, session_id, token):
        raise ValueError(f"callback failed on {kind}")

    client.on_revoke(bad_callback)
    session = client.create("bad")
    with session.lock(["a"]):
        pass
    pid = run_child(lambda: sessionbroker.Client.attach(store).open("bad").lock(["a"], timeout=5).unlock())
    assert wait_child(pid) == 0  # the handoff happened despite the callback
    deadline = time.monotonic() + 5
    while len(reported) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert any(isinstance(e, ValueError) for e in reported)
    client.on_revoke(None)
    with session.lock(["a"], timeout=5):  # the library still works for this process
        pass


def test_on_revoke_takes_a_callable_or_none(client):
    with pytest.raises(TypeError):
        client.on_revoke(42)


def test_a_forked_child_attaches_again_and_locks(store, client):
    # What a gunicorn --preload worker sees: the master used a session (its process lock is
    # cached), forked, and the worker uses the same Client object.
    session = client.create("pre")
    with session.lock(["n"]) as lock:
        lock["n"] = b"master"
        parent_lock_kept = session.lock(["m"])

    def worker():
        with pytest.raises(sessionbroker.Detached):
            session.lock(["n"])  # the master's Session object
        with pytest.raises(sessionbroker.Detached):
            parent_lock_kept["m"]  # the master's Lock object
        with client.open("pre").lock(["n"], timeout=5) as lock:  # re-attaches, then revokes
            assert lock["n"] == b"master"
            lock["n"] = b"worker"
        assert client.list() == ["pre"]

    parent_lock_kept.unlock()
    pid = run_child(worker)
    assert wait_child(pid) == 0
    with session.lock(["n"], timeout=5) as lock:
        assert lock["n"] == b"worker"


def test_a_forked_child_keeps_the_revoke_callback(client):
    # Registered in the parent; the child's re-attached client must call it when the parent
    # asks for the lock the child keeps cached.
    released = threading.Event()
    client.on_revoke(lambda kind, sid, token: kind == "released" and released.set())
    client.create("cb")
    ready_r, ready_w = os.pipe()

    def child():
        with client.open("cb").lock(["a"], timeout=5):
            pass
        os.write(ready_w, b"r")
        assert released.wait(10)

    pid = run_child(child)
    assert os.read(ready_r, 1) == b"r"
    with client.open("cb").lock(["a"], timeout=10):
        pass
    assert wait_child(pid) == 0
    client.on_revoke(None)


def test_a_client_detached_before_fork_stays_detached_in_the_child(client):
    client.detach()

    def child():
        with pytest.raises(sessionbroker.Detached):
            client.list()

    assert wait_child(run_child(child)) == 0


def increment(store, n):
    c = sessionbroker.Client.attach(store)
    s = c.open("counter")
    for _ in range(n):
        with s.lock(["n"], timeout=10) as lock:
            lock["n"] = str(int(lock.get("n", b"0")) + 1)
    c.detach()


def test_two_processes_incrementing_one_counter_lose_no_update(store, client):
    # Each increment reads, then writes from what it read: without the lock, the two processes
    # would overwrite each other's increments and the total would fall short.
    client.create("counter")
    n = 300
    pids = [run_child(increment, store, n) for _ in range(2)]
    assert [wait_child(pid, 60) for pid in pids] == [0, 0]
    with client.open("counter").lock(["n"], timeout=5) as lock:
        assert int(lock["n"]) == 2 * n
