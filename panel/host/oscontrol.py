"""The OS seam: spawn detached processes, send signals, wait for exits, reap our children."""
import logging
import os
import select
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field

import psutil

from panel.host.processes import still_same

log = logging.getLogger("panel.os")
POLL_S = 0.05

_spawned = {}
_exits = {}  # pid -> exit status of children we reaped (negative: killed by that signal)
_spawned_lock = threading.Lock()
EXITS_KEPT = 200
KILL_WAIT_S = 5.0  # after SIGKILL a process is gone at once; this only bounds the check
REAP_WAIT_S = 2.0


def spawn(argv, log_path, env, cwd):
    """Start argv in its own session with output appended to log_path; no shell involved."""
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    with _spawned_lock:
        _spawned[proc.pid] = proc
    threading.Thread(target=_reap_when_it_ends, args=(proc,), name=f"reap-{proc.pid}", daemon=True).start()
    log.info("spawned %s as pid %s", argv, proc.pid)
    return proc


def _reap_when_it_ends(proc):
    """Wait for one child of ours: it is reaped the moment it ends (never a zombie), its exit status kept."""
    proc.wait()
    reap()


def reap():
    """Collect exit codes of children we spawned so none stays a zombie."""
    with _spawned_lock:
        for pid, proc in list(_spawned.items()):
            if proc.poll() is not None:
                del _spawned[pid]
                _exits[pid] = proc.returncode
        while len(_exits) > EXITS_KEPT:
            _exits.pop(next(iter(_exits)))


def exit_status(pid):
    """How a child we spawned ended (negative: the signal), or None when it was not ours or still runs.

    A child that has ended but whose reaper thread has not run yet (a loaded machine) is waited for,
    briefly: its status is known the moment it ended, and a caller must not say "unknown" for want of it.
    """
    with _spawned_lock:
        proc = _spawned.get(pid)
    if proc is not None and not _running(pid):
        try:
            proc.wait(timeout=REAP_WAIT_S)
        except subprocess.TimeoutExpired:
            pass
    reap()
    with _spawned_lock:
        return _exits.get(pid)


def _running(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def describe_exit(status):
    """Words for an exit status: 'exit status 1', 'killed by SIGKILL', or 'unknown'."""
    if status is None:
        return "exit status unknown (not started by this panel process)"
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


def send_signal(ref, sig):
    """Signal the process only if (pid, create_time, cmdline) still match what we saw."""
    if not still_same(ref):
        log.warning("not signalling pid %s: it is gone or the pid was reused", ref.pid)
        return False
    try:
        os.kill(ref.pid, sig)
    except ProcessLookupError:
        return False
    log.info("sent %s to %s pid %s", signal.Signals(sig).name, ref.kind, ref.pid)
    return True


def _alive(pid, create_time):
    try:
        proc = psutil.Process(pid)
        return proc.create_time() == create_time and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_gone(procs, timeout_s):
    """Wait until every (pid, create_time) is gone; return the ones still alive.

    Each is watched through a pidfd (Linux 5.3), which turns readable the instant its process ends: a cancel is
    confirmed when the pool process exits, not at the next poll. Where a pidfd cannot be had, it is polled.
    """
    deadline = time.monotonic() + timeout_s
    reap()
    left = [(pid, ct) for pid, ct in procs if _alive(pid, ct)]
    watched = _pidfds(left)
    try:
        while left:
            wait_s = deadline - time.monotonic()
            if wait_s <= 0:
                break
            _wait_exit(watched, min(wait_s, POLL_S) if len(watched) < len(left) else wait_s)
            reap()
            left = [(pid, ct) for pid, ct in left if _alive(pid, ct)]
            for ended in [member for member in watched if member not in left]:
                os.close(watched.pop(ended))  # readable for good now: it would wake every later wait
    finally:
        for fd in watched.values():
            os.close(fd)
    return left


def _pidfds(procs):
    """{(pid, create_time): pidfd} of those still the process we saw once the fd is open (not a reused pid)."""
    watched = {}
    for pid, ct in procs:
        try:
            fd = os.pidfd_open(pid)
        except (AttributeError, OSError):  # not Linux, an old kernel, or it just ended
            continue
        if _alive(pid, ct):
            watched[(pid, ct)] = fd
        else:
            os.close(fd)
    return watched


def _wait_exit(watched, wait_s):
    """Until one watched process ends or wait_s passes (a sleep when none is watched)."""
    if not watched:
        time.sleep(wait_s)
        return
    poller = select.poll()
    for fd in watched.values():
        poller.register(fd, select.POLLIN)
    poller.poll(wait_s * 1000)


def tree_of(ref):
    """(pid, create_time) of the process and all its descendants, read before we signal."""
    try:
        root = psutil.Process(ref.pid)
        members = [root] + root.children(recursive=True)
        return [(p.pid, p.create_time()) for p in members]
    except psutil.Error:
        return []


def kill_left(members):
    """SIGKILL what is left of a tree, each member checked by create_time first."""
    for pid, ct in members:
        if _alive(pid, ct):
            try:
                os.kill(pid, signal.SIGKILL)
                log.warning("sent SIGKILL to pid %s after the grace period", pid)
            except ProcessLookupError:
                pass


@dataclass
class Terminated:
    """What a warm-then-cold stop did."""

    reached: list = field(default_factory=list)  # the processes the TERM was delivered to
    forced: list = field(default_factory=list)   # (pid, create_time) still alive after the grace: sent SIGKILL
    left: list = field(default_factory=list)     # (pid, create_time) alive even after the SIGKILL


def terminate(refs, grace_s, kill_wait_s=KILL_WAIT_S, send_term=None):
    """Stop processes warm, then cold: TERM, wait up to the grace, SIGKILL what is left of their trees, wait.

    The trees are read before the TERM, so a pool child orphaned by its parent's exit is still found. The TERM is
    a SIGTERM to each process, or `send_term()` when another party delivers it (a worker terminating its own pool
    process for a revoke). A PermissionError from the TERM propagates: nothing was stopped.
    """
    members = [m for ref in refs for m in tree_of(ref)]
    if send_term is None:
        reached = [ref for ref in refs if send_signal(ref, signal.SIGTERM)]
    else:
        send_term()
        reached = list(refs)
    wait_gone([(r.pid, r.create_time) for r in reached], grace_s)
    forced = [m for m in members if _alive(*m)]
    if forced:
        log.warning("pids %s outlived SIGTERM by %ss; killing them", [pid for pid, _ in forced], grace_s)
        kill_left(forced)
    return Terminated(reached, forced, wait_gone(forced, kill_wait_s) if forced else [])


def kill(ref, kill_wait_s=KILL_WAIT_S):
    """SIGKILL a process and its tree at once (one that failed to start has nothing to finish); survivors."""
    members = tree_of(ref)
    kill_left(members)
    return wait_gone(members, kill_wait_s)
