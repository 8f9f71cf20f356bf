"""The gunicorn worker and logger `make serve` runs: gthread's worker, with a kept-alive connection's next request
served at once, and gunicorn's access lines written off the answer's path.

gthread answers a request on a pool thread, then hands the connection back to its main thread's poller; the next
request on it wakes the poller, which hands it to a pool thread again. On a poll that costs two thread hand-offs and
their wake-ups, ~0.1 ms of a ~1 ms answer. Here the thread that answered waits a moment for that next request (a
page's fetches, a script's loop, a poller reading several routes come on one connection, one right after another)
and serves it itself. It waits only while it takes nothing from anyone: never while a request waits for a thread, and
never as the last thread free, so a new connection or a control action always finds one.

Loaded by gunicorn only (gunicorn.conf.py names both classes); nothing else imports this module.
"""
import os
import queue
import select
import threading

from gunicorn import glogging
from gunicorn.workers.gthread import ThreadWorker

NEXT_REQUEST_WAIT_MS = 20  # how long an answering thread waits for the same connection's next request
_writing = threading.local()  # the access line being written: when its answer ended
_starting = threading.Lock()


class PanelWorker(ThreadWorker):
    """gthread's worker; its threads serve a kept-alive connection's next request when it comes within
    NEXT_REQUEST_WAIT_MS and no other request needs the thread."""

    def init_process(self):
        self._count_lock = threading.Lock()
        self._queued = 0  # connections handed to the pool that no thread has taken yet
        self._waiting = 0  # threads waiting for a connection's next request
        super().init_process()

    def run(self):
        try:
            super().run()
        finally:
            if isinstance(self.log, AccessLog):
                self.log.write_pending()

    def enqueue_req(self, conn):
        with self._count_lock:
            self._queued += 1
        super().enqueue_req(conn)

    def handle(self, conn):
        with self._count_lock:
            self._queued -= 1
        keep = super().handle(conn)
        while keep is True and self._next_request(conn):
            keep = super().handle(conn)
        return keep

    def _next_request(self, conn):
        """Whether the connection's next request came in time, waited for only when no one else needs this thread."""
        if not self.alive or conn.parser is None or conn.parser.unreader.buf.getvalue():
            return False  # stopping, or bytes read ahead: gthread's own path takes them
        with self._count_lock:
            if self._queued or self._waiting >= self.cfg.threads - 1:
                return False
            self._waiting += 1
        try:
            poller = select.poll()  # not select(): a worker may hold more than FD_SETSIZE sockets
            poller.register(conn.sock, select.POLLIN)
            readable = poller.poll(NEXT_REQUEST_WAIT_MS)
        except (OSError, ValueError):  # the socket went away meanwhile
            readable = []
        finally:
            with self._count_lock:
                self._waiting -= 1
        return bool(readable) and self.alive


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
