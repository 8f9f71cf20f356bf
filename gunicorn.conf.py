"""gunicorn settings for `make serve`: several workers with threads; one of them runs the background duties.

Every setting comes from the environment or `.env`, as for the rest of the panel: PANEL_HOST,
PANEL_PORT, PANEL_WORKERS, PANEL_THREADS, PANEL_ACCESS_LOG, STOP_GRACE_S, START_TIMEOUT_S,
CONTROL_LOCK_WAIT_S. Run from anywhere: `.venv/bin/gunicorn -c /path/to/gunicorn.conf.py`.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # gunicorn's console script puts .venv/bin on the path, not the project

from panel.config import DEFAULTS, instance_path, read_env  # noqa: E402

KILL_WAIT_S = 5  # the supervisor's wait after SIGKILL (panel.host.supervisor.KILL_WAIT_S)
MARGIN_S = 10

_env = read_env()


def _setting(key, default=None):
    return _env.get(key) or (DEFAULTS[key] if default is None else default)


def _bind_address(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# The factory is called once in each worker (no preload): every worker owns its app, its database
# pool and its threads; nothing is forked from a master that already opened connections.
wsgi_app = "app:create_app()"
chdir = str(ROOT)  # the worker and Beat the panel starts must run from the project folder to be "ours"
bind = [_bind_address(_setting("PANEL_HOST"), _setting("PANEL_PORT"))]
workers = int(_setting("PANEL_WORKERS", "3"))
# Threads, because a start, stop or restart holds its request for seconds (and waits for the control
# lock up to CONTROL_LOCK_WAIT_S): with sync workers three such requests would starve every poller.
worker_class = "gthread"
threads = int(_setting("PANEL_THREADS", "4"))

_stop_s = float(_setting("STOP_GRACE_S")) + KILL_WAIT_S
_longest_control_s = float(_setting("CONTROL_LOCK_WAIT_S")) + _stop_s + float(_setting("START_TIMEOUT_S"))
# With gthread the timeout watches the worker's main loop, not one request; it is still set so that the
# longest control action (wait for the lock, stop Beat, start it again) would fit under a sync worker.
timeout = int(_longest_control_s + MARGIN_S)
# On SIGTERM or HUP a worker finishes what it serves: a stop in progress must reach its SIGKILL and wait.
graceful_timeout = int(_stop_s + MARGIN_S)
keepalive = 5  # seconds: the dashboard and curl loops poll the same connection

_access = _setting("PANEL_ACCESS_LOG", str(instance_path(_env) / "logs" / "access.log"))
accesslog = None if _access == "off" else _access
errorlog = "-"
proc_name = "celery-panel"


def post_worker_init(worker):
    """Each worker joins the background duties; the file lock lets one act while the others stand by."""
    from panel import background
    worker.panel_background = background.start(worker.wsgi)


def worker_exit(server, worker):
    """A worker that stops gracefully hands the duties over now, not when the kernel drops its lock."""
    handle = getattr(worker, "panel_background", None)
    if handle is not None:
        handle.stop()
