"""A process's run-log changes, committed behind its sends and tasks by one thread: neither waits on the database.

The sending or task thread queues each change (a tuple of recorder steps) in the order its signals fire; the
writer takes what queues up within a linger of the first change and commits it as one short transaction. A
change after a quiet spell lingers LINGER_S (it shows at once); under a steady stream (the last commit was
less than BUSY_LINGER_S ago) changes gather for BUSY_LINGER_S, so a burst costs a commit every 50 ms instead
of one every few tasks. That is what keeps recording cheap when a sender and several pool processes share one
SQLite file: each commit re-reads the pages the others changed. A flush ends the linger at once.
"""
import logging
import queue
import threading
import time

log = logging.getLogger("panel.run_writer")
BATCH_MAX = 200  # changes per transaction: long enough to share commits, short enough not to hold the lock
LINGER_S = 0.005  # how much later a change after a quiet spell may show
BUSY_LINGER_S = 0.05  # how much later a change in a steady stream may show, for the commits it saves
FLUSH_WAIT_S = 10


class RunWriter:
    """One queue and one thread; `commit(changes)` writes a list of changes in one go."""

    def __init__(self, commit):
        self._commit = commit
        self._queue = queue.SimpleQueue()
        self._hurry = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="run-writer", daemon=True)
        self._thread.start()

    def put(self, steps):
        self._queue.put(steps)

    def flush(self, timeout_s=FLUSH_WAIT_S):
        """Wait until everything queued before this call is committed (or kept in the spool)."""
        done = threading.Event()
        self._queue.put(done)
        self._hurry.set()  # no linger: the caller is waiting
        if not done.wait(timeout_s):
            log.error("run-log changes still queued after %.0f s; a process exit now loses them", timeout_s)
            return False
        return True

    def _loop(self):
        last_commit = float("-inf")
        while True:
            batch = [self._queue.get()]
            # Linger for the changes a busy process is about to make: they share the commit. The thread sleeps
            # through it (one wake-up a batch, not one a change) unless a flush cuts it short.
            now = time.monotonic()
            if not isinstance(batch[0], threading.Event) and self._queue.qsize() < BATCH_MAX:
                self._hurry.wait(BUSY_LINGER_S if now - last_commit < BUSY_LINGER_S else LINGER_S)
                self._hurry.clear()
            while len(batch) < BATCH_MAX:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            changes = [item for item in batch if not isinstance(item, threading.Event)]
            if changes:
                try:
                    self._commit(changes)
                except Exception:  # the thread must outlive any one bad batch
                    log.exception("could not record %d run change(s)", len(changes))
                last_commit = time.monotonic()
            for item in batch:
                if isinstance(item, threading.Event):
                    item.set()
