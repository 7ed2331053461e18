"""Real child processes for the multi-process Python tests: os.fork, and the child never returns
into pytest (it leaves with os._exit, 0 when its function returned, 1 when it raised)."""
import os
import signal
import sys
import time
import traceback


def fork(fn, *args):
    """Runs fn(*args) in a forked child; returns its pid. Exit 0 if fn returned, 1 if it raised."""
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


def wait(pid, deadline):
    """The child's exit code; a child still running at `deadline` (time.monotonic()) is killed and
    gives -9."""
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return -9
        time.sleep(0.01)


def join(pids, timeout=120):
    """Waits for the children; returns their exit codes (a child still running after `timeout`
    seconds is killed, and counts as failed with -9)."""
    deadline = time.monotonic() + timeout
    return [wait(pid, deadline) for pid in pids]
