"""The attached project's own `celery`, run in its folder as a subprocess with a timeout: it imports the project in
its own process, so the panel never does."""
import socket
import subprocess

import psutil

RUN_TIMEOUT_S = 30.0  # `celery -A app report` imports the project: a Django project takes a while
EVENTS_FLAGS = ("-E", "--task-events")


def run(target, env, *args, timeout_s=RUN_TIMEOUT_S):
    """(ok, output) of `<the project's celery> <args>` run in the project's folder."""
    argv = [target.celery_bin, *args]
    try:
        out = subprocess.run(argv, cwd=target.workdir, env=env, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"{type(exc).__name__}: {exc}"
    return out.returncode == 0, (out.stdout + out.stderr).strip()


def report(target, env, timeout_s=RUN_TIMEOUT_S):
    """(ok, output) of `celery -A <app> report`: the project's settings as its own Celery loads them."""
    return run(target, env, "-A", target.app, "report", timeout_s=timeout_s)


def started_with_events(nodename, pid):
    """True/False when the worker runs on this host and its command line has -E; None when it cannot be told."""
    if not pid or nodename.partition("@")[2] not in (socket.gethostname(), socket.getfqdn()):
        return None
    try:
        argv = psutil.Process(pid).cmdline()
    except (psutil.Error, OSError):
        return None
    return any(arg in EVENTS_FLAGS for arg in argv)
