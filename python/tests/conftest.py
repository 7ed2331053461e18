"""Fixtures of the sessionbroker pytest suite: a private store per test, served by a real
session-broker (its path in $SESSIONBROKER_BROKER, set by ctest) on a segment named
sbtest-py-<pid>-<n> that the broker removes when it stops, and a client attached to it.

Also helpers for the multi-process tests: run_child forks a real child process (os.fork), runs a
function in it and reports its exit status; the child never returns into pytest.
"""
import itertools
import os
import select
import signal
import subprocess
import sys
import tempfile
import traceback

import pytest

import sessionbroker

_names = itertools.count()
MAX_VALUE = 64 * 1024


def _broker_path():
    path = os.environ.get("SESSIONBROKER_BROKER")
    if not path:
        pytest.fail("SESSIONBROKER_BROKER is not set: run the suite through ctest (scripts/test.sh)")
    return path


class Store:
    """A running session-broker on a fresh segment; .name is the store name for attach()."""

    def __init__(self):
        self.name = f"sbtest-py-{os.getpid()}-{next(_names)}"
        r, w = os.pipe()
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [_broker_path(), "--segment", self.name, "--remove-on-exit", "--ready-fd", str(w),
             "--max-clients", "16", "--max-sessions", "64", "--attr-memory", "4M",
             "--max-value", str(MAX_VALUE)],
            pass_fds=(w,), stdout=self.log, stderr=subprocess.STDOUT)
        os.close(w)
        try:
            ready, _, _ = select.select([r], [], [], 10)
            line = os.read(r, 64) if ready else b""
        finally:
            os.close(r)
        if not line.startswith(b"ready"):
            self.stop()
            self.log.seek(0)
            pytest.fail(f"session-broker did not start: {self.log.read().decode(errors='replace')}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.log.close()


@pytest.fixture
def store():
    s = Store()
    yield s.name
    s.stop()


@pytest.fixture
def client(store):
    c = sessionbroker.Client.attach(store)
    yield c
    c.detach()


def run_child(fn, *args):
    """Forks; the child runs fn(*args) and exits 0 if it returned, 1 if it raised (printing the
    traceback). Returns the child's pid."""
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            fn(*args)
            status = 0
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
    return pid


def wait_child(pid, timeout=30):
    """The child's exit code; fails the test if it does not end within timeout seconds."""
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"child {pid} did not finish within {timeout} s")
