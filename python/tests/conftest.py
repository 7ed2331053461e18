"""Fixtures of the sessionbroker pytest suite: a private store per test, served by a real
session-broker (support/broker.py: its path in $SESSIONBROKER_BROKER, set by ctest) on a segment
named sbtest-py-<pid>-<n> that the broker removes when it stops, and a client attached to it.

Also helpers for the multi-process tests (support/procs.py): run_child forks a real child process
(os.fork), runs a function in it and reports its exit status; the child never returns into pytest.
"""
import os
import sys
import time

import pytest

import sessionbroker

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
import procs  # noqa: E402
from broker import Broker  # noqa: E402

MAX_VALUE = 64 * 1024


@pytest.fixture
def store():
    with Broker("py", "--max-clients", "16", "--max-sessions", "64", "--attr-memory", "4M",
                "--max-value", str(MAX_VALUE)) as name:
        yield name


@pytest.fixture
def client(store):
    c = sessionbroker.Client.attach(store)
    yield c
    c.detach()


def run_child(fn, *args):
    """Forks; the child runs fn(*args) and exits 0 if it returned, 1 if it raised (printing the
    traceback). Returns the child's pid."""
    return procs.fork(fn, *args)


def wait_child(pid, timeout=30):
    """The child's exit code; fails the test if it does not end within timeout seconds."""
    code = procs.wait(pid, time.monotonic() + timeout)
    if code == -9:
        pytest.fail(f"child {pid} did not finish within {timeout} s")
    return code
