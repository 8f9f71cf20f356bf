"""The gunicorn worker and logger `make serve` runs: gthread's worker, and gunicorn's access lines written off the
answer's path (and before a stopping worker exits).

A thread that waited for a kept-alive connection's next request and served it itself (~0.1 ms a request for one
client) was tried and dropped: under fifty pollers it cost 12 % of the throughput (1,510 against 1,740 req/s, p99
75 against 70 ms, two paired runs), and the panel's status under many pollers is what it is measured by.

Loaded by gunicorn only (gunicorn.conf.py names both classes); nothing else imports this module.
"""
import os
import queue
import threading

from gunicorn import glogging
from gunicorn.workers.gthread import ThreadWorker

_writing = threading.local()  # the access line being written: when its answer ended
_starting = threading.Lock()


class PanelWorker(ThreadWorker):
    """gthread's worker, which writes its queued access lines before it exits."""

    def run(self):
        try:
            super().run()
        finally:
            if isinstance(self.log, AccessLog):
                self.log.write_pending()


class AccessLog(glogging.Logger):
    """gunicorn's logger, whose access lines are formatted and written by a thread of their own: the same lines, in
    the same order, with the time the answer ended, written moments later instead of on the answer's path (gunicorn
    builds a dict of every header and environ variable for each line, and writes it, ~0.05-0.1 ms a request)."""

    QUEUED_MAX = 10_000  # lines waiting; beyond, a line is written on the request's thread as gunicorn does
    DRAIN_WAIT_S = 5  # a stopping worker waits this long at most for its last lines

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        line = (resp, req, environ, request_time, self.now())
        try:
            self._lines().put_nowait(line)
        except queue.Full:
            self._write(*line)

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        atoms["t"] = getattr(_writing, "stamp", None) or atoms["t"]  # when the answer ended, not when written
        return atoms

    def _lines(self):
        """This process's queue and writer thread (made after the fork: a thread does not cross it)."""
        found = getattr(self, "_queue", None)
        if found is None or found[0] != os.getpid():
            with _starting:
                found = getattr(self, "_queue", None)
                if found is None or found[0] != os.getpid():
                    lines = queue.Queue(self.QUEUED_MAX)
                    writer = threading.Thread(target=self._drain, args=(lines,), name="access-log", daemon=True)
                    writer.start()
                    found = self._queue = (os.getpid(), lines, writer)
        return found[1]

    def _drain(self, lines):
        while (line := lines.get()) is not None:
            self._write(*line)

    def _write(self, resp, req, environ, request_time, stamp):
        _writing.stamp = stamp
        try:
            super().access(resp, req, environ, request_time)
        finally:
            _writing.stamp = None

    def write_pending(self):
        """Write what is queued now (a worker that stops)."""
        found = getattr(self, "_queue", None)
        if found is None or found[0] != os.getpid():
            return
        _, lines, writer = found
        try:
            lines.put(None, timeout=self.DRAIN_WAIT_S)
        except queue.Full:
            return
        writer.join(self.DRAIN_WAIT_S)
        self._queue = None
