"""The gunicorn worker and logger `make serve` runs: gthread's worker, and gunicorn's access lines written off the
answer's path (and before a stopping worker exits).

A thread that waited for a kept-alive connection's next request and served it itself (~0.1 ms a request for one
client) was tried and dropped: under fifty pollers it cost 12 % of the throughput (1,510 against 1,740 req/s, p99
75 against 70 ms, two paired runs), and the panel's status under many pollers is what it is measured by.

Loaded by gunicorn only (gunicorn.conf.py names both classes); nothing else imports this module.
"""
import logging
import os
import threading
import traceback
from collections import deque

from gunicorn import glogging
from gunicorn.config import AccessLogFormat
from gunicorn.workers.gthread import ThreadWorker

_writing = threading.local()  # the access line being written: when its answer ended
_starting = threading.Lock()
DEFAULT_FORMAT = AccessLogFormat.default


class PanelWorker(ThreadWorker):
    """gthread's worker, which writes its queued access lines before it exits."""

    def run(self):
        try:
            super().run()
        finally:
            if isinstance(self.log, AccessLog):
                self.log.write_pending()


class AccessLog(glogging.Logger):
    """gunicorn's logger, whose access lines are written by a thread of their own: the same lines, in the same order,
    with the time the answer ended, written in batches moments later instead of one by one on the answer's path.

    gunicorn builds a dict of every header and environ variable for each line and logs it through `logging` (~75 us a
    request here, a third of a bare gthread answer); with the default format the line is made from its nine fields.
    """

    QUEUED_MAX = 10_000  # lines waiting; beyond, a line is written on the request's thread as gunicorn does
    DRAIN_EVERY_S = 0.1  # how often the writer wakes: one write for all the lines since, not one wake per line
    DRAIN_WAIT_S = 5  # a stopping worker waits this long at most for its last lines

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        stamp = self.now()
        if self.cfg.access_log_format == DEFAULT_FORMAT:
            line = self._default_line(resp, environ, stamp)
        else:
            line = (resp, req, environ, request_time, stamp)
        lines = self._lines()
        if len(lines) < self.QUEUED_MAX:
            lines.append(line)
        else:
            self._write_all([line])

    def _default_line(self, resp, environ, stamp):
        """gunicorn's default line from the fields it names, quoted as SafeAtoms quotes them."""
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        sent = getattr(resp, "sent", None)
        fields = (environ.get("REMOTE_ADDR", "-"), "-", self._get_user(environ) or "-", stamp,
                  f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}", status,
                  sent is not None and str(sent) or "-", environ.get("HTTP_REFERER", "-"),
                  environ.get("HTTP_USER_AGENT", "-"))
        h, ident, u, t, r, s, b, f, a = (v.replace('"', '\\"') if isinstance(v, str) else v for v in fields)
        return f'{h} {ident} {u} {t} "{r}" {s} {b} "{f}" "{a}"'

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        atoms["t"] = getattr(_writing, "stamp", None) or atoms["t"]  # when the answer ended, not when written
        return atoms

    def _lines(self):
        """This process's lines and writer thread (made after the fork: a thread does not cross it)."""
        found = self.__dict__.get("_queue")
        if found is None or found[0] != os.getpid():
            with _starting:
                found = self.__dict__.get("_queue")
                if found is None or found[0] != os.getpid():
                    lines, stop = deque(), threading.Event()
                    writer = threading.Thread(target=self._drain, args=(lines, stop), name="access-log", daemon=True)
                    writer.start()
                    found = self._queue = (os.getpid(), lines, writer, stop)
        return found[1]

    def _drain(self, lines, stop):
        while not stop.wait(self.DRAIN_EVERY_S):
            self._write_all(_taken(lines))
        self._write_all(_taken(lines))

    def _write_all(self, lines):
        """Write the lines in order: runs of ready lines in one write to each stream, the others through gunicorn."""
        ready = []
        for line in lines:
            if isinstance(line, str):
                ready.append(line)
                continue
            self._write_ready(ready)
            ready = []
            self._write(*line)
        self._write_ready(ready)

    def _write_ready(self, ready):
        if not ready:
            return
        handlers = self.access_log.handlers
        if not all(_plain_stream(h) for h in handlers):  # a syslog handler, say: each line through logging
            for line in ready:
                self.access_log.info("%s", line)
            return
        text = "".join(f"{line}\n" for line in ready)
        for handler in handlers:
            with handler.lock:
                try:
                    handler.stream.write(text)
                    handler.flush()
                except Exception:  # as logging does: a full disk must not stop the worker
                    self.error(traceback.format_exc())

    def _write(self, resp, req, environ, request_time, stamp):
        _writing.stamp = stamp
        try:
            super().access(resp, req, environ, request_time)
        finally:
            _writing.stamp = None

    def write_pending(self):
        """Write what is queued now (a worker that stops)."""
        found = self.__dict__.get("_queue")
        if found is None or found[0] != os.getpid():
            return
        _, _, writer, stop = found
        stop.set()
        writer.join(self.DRAIN_WAIT_S)
        self._queue = None


def _taken(lines):
    """Every line queued so far, oldest first; the request threads go on appending meanwhile."""
    return [lines.popleft() for _ in range(len(lines))]


def _plain_stream(handler):
    """A handler gunicorn set up for a file or stdout: the message alone, one line each."""
    return (isinstance(handler, logging.StreamHandler) and handler.stream is not None
            and handler.formatter is not None and handler.formatter._fmt == glogging.Logger.access_fmt)
