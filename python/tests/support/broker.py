"""A session-broker process for the Python tests (the module's and the Django/Flask backends'): a
private segment, removed at the end.

    with Broker("py", "--max-sessions", "64") as segment: ...   # segment name, for Client.attach

The broker binary comes from SESSIONBROKER_BROKER (ctest sets it to the build tree's
session-broker). The segment is named sbtest-<tag>-<pid>-<n> (CI checks that no sbtest-* is left in
/dev/shm); the broker runs with --remove-on-exit and says "ready" on a pipe (--ready-fd) once
the segment is usable.
"""
import itertools
import os
import select
import signal
import subprocess
import tempfile

_seq = itertools.count()


class Broker:
    """session-broker on a fresh segment; on exit stops it (SIGTERM) and removes the segment."""

    def __init__(self, tag="web", *args):
        self.args = list(args)
        self.segment = "sbtest-%s-%d-%d" % (tag, os.getpid(), next(_seq))
        self.proc = None
        self.log = None

    def __enter__(self):
        binary = os.environ.get("SESSIONBROKER_BROKER", "session-broker")
        self.log = tempfile.TemporaryFile()
        r, w = os.pipe()
        self.proc = subprocess.Popen(
            [binary, "--segment", self.segment, "--remove-on-exit", "--ready-fd", str(w),
             *self.args],
            pass_fds=(w,), stdout=self.log, stderr=subprocess.STDOUT)
        os.close(w)
        try:
            ready, _, _ = select.select([r], [], [], 30)
            line = os.read(r, 64) if ready else b""
        finally:
            os.close(r)
        if not line.startswith(b"ready"):
            self.__exit__()
            raise RuntimeError("session-broker did not start: " + self.output())
        return self.segment

    def output(self):
        """What the broker logged so far."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        try:  # a broker that died first leaves its segment: do not leave it in /dev/shm
            os.unlink("/dev/shm/" + self.segment)
        except FileNotFoundError:
            pass
        return False
