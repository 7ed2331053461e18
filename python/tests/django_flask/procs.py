"""Real child processes for the multi-process tests: os.fork, and the child never returns into
pytest (it leaves with os._exit, 0 when its function returned, 1 when it raised)."""
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


def join(pids, timeout=120):
    """Waits for the children; returns their exit codes (a child still running after `timeout`
    seconds is killed, and counts as failed)."""
    codes, deadline = [], time.monotonic() + timeout
    for pid in pids:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                codes.append(os.waitstatus_to_exitcode(status))
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                codes.append(-9)
                break
            time.sleep(0.01)
    return codes
