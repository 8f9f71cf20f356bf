"""gunicorn settings for `make serve`: several workers with threads; one of them runs the background duties.

Every setting comes from the environment or `.env`, as for the rest of the panel: PANEL_HOST,
PANEL_PORT, PANEL_WORKERS, PANEL_THREADS, PANEL_ACCESS_LOG, STOP_GRACE_S, START_TIMEOUT_S,
CONTROL_LOCK_WAIT_S. Run from anywhere: `.venv/bin/gunicorn -c /path/to/gunicorn.conf.py`.
"""
import gc
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # gunicorn's console script puts .venv/bin on the path, not the project

from panel.config import read_settings  # noqa: E402
from panel.errors import SettingsError  # noqa: E402

KILL_WAIT_S = 5  # the supervisor's wait after SIGKILL (panel.host.supervisor.KILL_WAIT_S)
MARGIN_S = 10

try:
    _settings = read_settings()  # typed, as the panel reads them (panel/config.py)
except SettingsError as exc:
    sys.exit(f"gunicorn.conf.py: {exc}")


def _bind_address(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# The factory is called once in each worker (no preload): every worker owns its app, its database
# pool and its threads; nothing is forked from a master that already opened connections.
wsgi_app = "app:create_app()"
chdir = str(ROOT)  # the worker and Beat the panel starts must run from the project folder to be "ours"
bind = [_bind_address(_settings.PANEL_HOST, _settings.PANEL_PORT)]
workers = _settings.PANEL_WORKERS
# Threads, because a start, stop or restart holds its request for seconds (and waits for the control
# lock up to CONTROL_LOCK_WAIT_S): with sync workers three such requests would starve every poller.
worker_class = "panel.web.server.PanelWorker"  # gthread's, writing its queued access lines before it exits
threads = _settings.PANEL_THREADS
logger_class = "panel.web.server.AccessLog"  # gunicorn's lines, written by a thread of their own

_stop_s = _settings.STOP_GRACE_S + KILL_WAIT_S
_longest_control_s = _settings.CONTROL_LOCK_WAIT_S + _stop_s + _settings.START_TIMEOUT_S
# With gthread the timeout watches the worker's main loop, not one request; it is still set so that the
# longest control action (wait for the lock, stop Beat, start it again) would fit under a sync worker.
timeout = int(_longest_control_s + MARGIN_S)
# On SIGTERM or HUP a worker finishes what it serves: a stop in progress must reach its SIGKILL and wait.
graceful_timeout = int(_stop_s + MARGIN_S)
keepalive = 5  # seconds: the dashboard and curl loops poll the same connection

_access = _settings.PANEL_ACCESS_LOG or str(_settings.instance_folder() / "logs" / "access.log")
accesslog = None if _access == "off" else _access
errorlog = "-"
proc_name = "celery-panel"


def post_worker_init(worker):
    """Each worker joins the background duties; the file lock lets one act while the others stand by."""
    from panel import background
    worker.panel_background = background.start(worker.wsgi)
    # What the app made at start (~150,000 objects) lives as long as the worker: out of the collector's sight, a
    # full collection no longer walks it, which stalled every thread of the worker ~70 ms, a poller's p99.
    gc.freeze()


def worker_exit(server, worker):
    """A worker that stops gracefully hands the duties over now, not when the kernel drops its lock."""
    handle = getattr(worker, "panel_background", None)
    if handle is not None:
        handle.stop()
