"""A pool process's run-log changes, committed behind the tasks by one thread: a task never waits on the database.

The task thread queues each change (a tuple of recorder steps) in the order its signals fire; the
writer takes what queues up within LINGER_S of the first change and commits it as one short
transaction. Under a burst that is several changes per commit instead of one, which is what keeps
recording cheap when several pool processes share one SQLite file.
"""
import logging
import queue
import threading
import time

log = logging.getLogger("panel.run_writer")
BATCH_MAX = 200  # changes per transaction: long enough to share commits, short enough not to hold the lock
LINGER_S = 0.005  # how much later a change may show, for the commits it saves under a burst
FLUSH_WAIT_S = 10


class RunWriter:
    """One queue and one thread; `commit(changes)` writes a list of changes in one go."""

    def __init__(self, commit):
        self._commit = commit
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="run-writer", daemon=True)
        self._thread.start()

    def put(self, steps):
        self._queue.put(steps)

    def flush(self, timeout_s=FLUSH_WAIT_S):
        """Wait until everything queued before this call is committed (or kept in the spool)."""
        done = threading.Event()
        self._queue.put(done)
        if not done.wait(timeout_s):
            log.error("run-log changes still queued after %.0f s; a process exit now loses them", timeout_s)
            return False
        return True

    def _loop(self):
        while True:
            batch = [self._queue.get()]
            # Linger a moment for the changes a busy process is about to make: they share the commit.
            until = time.monotonic() + LINGER_S
            while len(batch) < BATCH_MAX and not isinstance(batch[-1], threading.Event):
                left = until - time.monotonic()
                try:
                    batch.append(self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait())
                except queue.Empty:
                    break
            changes = [item for item in batch if not isinstance(item, threading.Event)]
            if changes:
                try:
                    self._commit(changes)
                except Exception:  # the thread must outlive any one bad batch
                    log.exception("could not record %d run change(s)", len(changes))
            for item in batch:
                if isinstance(item, threading.Event):
                    item.set()
