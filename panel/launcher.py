"""`make run` and `make serve`: make sure a broker answers, migrate the database, serve the panel."""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from werkzeug.serving import WSGIRequestHandler

from panel.broker import connection
from panel.config import ROOT
from panel.errors import BrokerDown, SettingsError

REDIS_START_WAIT_S = 10
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def ensure_broker(url, instance):
    """Ping the broker; start a private redis-server under instance/ for a local Redis URL if none answers (never
    for another broker: a RabbitMQ that does not answer is named, with how to start it)."""
    try:
        connection.ping(url)
        return "running"
    except BrokerDown as exc:
        reason = str(exc)
    parsed = urlparse(url)
    binary = shutil.which("redis-server")
    if parsed.scheme != "redis":  # RabbitMQ or another broker: not ours to start
        sys.exit(f"{reason}\nStart that broker first (RabbitMQ: `systemctl start rabbitmq-server`), or set "
                 f"CELERY_BROKER_URL to one that runs, then run `make run` again.")
    if parsed.hostname not in LOCAL_HOSTS or not binary:
        sys.exit(f"{reason}\nStart Redis first: `apt-get install redis-server` (or set CELERY_BROKER_URL "
                 f"to a broker that runs), then run `make run` again.")
    folder = Path(instance) / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    port = str(parsed.port or 6379)
    subprocess.run([binary, "--port", port, "--bind", parsed.hostname, "--dir", str(folder), "--daemonize", "yes",
                    "--pidfile", str(folder / "redis.pid"), "--logfile", str(folder / "redis.log")], check=True)
    deadline = time.monotonic() + REDIS_START_WAIT_S
    while time.monotonic() < deadline:
        try:
            connection.ping(url)
            return f"started a private redis-server on port {port} (pid file {folder / 'redis.pid'})"
        except BrokerDown:
            time.sleep(0.2)
    sys.exit(f"started redis-server on port {port} but it does not answer; see {folder / 'redis.log'}")


def prepare():
    """What must happen once before serving: a broker answers, the database is migrated, an admin exists."""
    from flask_migrate import upgrade

    from app import create_app
    from panel.security import users

    app = create_app()
    cfg = app.config
    print(f"broker: {ensure_broker(cfg['CELERY_BROKER_URL'], cfg['INSTANCE_PATH'])}")
    with app.app_context():
        upgrade()
        password = None if cfg["PANEL_AUTH"].lower() == "off" else users.bootstrap_admin()
    print(f"database: {cfg['SQLALCHEMY_DATABASE_URI'].split('@')[-1]} migrated")
    if password:
        print("\n" + "=" * 72)
        print(f"No user existed, so one was created:  admin / {password}")
        print("This password is shown once. Change it with:")
        print("    .venv/bin/flask --app app users set-password admin")
        print("=" * 72 + "\n")
    return app


class NamelessRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler, minus the versions of Werkzeug and Python in `Server`: a scanner's shortcut."""

    def version_string(self):
        return "celery-panel"


def main():
    """`make run`: prepare, then serve with Flask's own server in this one process."""
    from panel import background

    app = prepare()
    cfg = app.config
    background.start(app)  # reconciler, cluster monitor, watchdog, alert checks: one process acts
    print(f"panel: http://{cfg['PANEL_HOST']}:{cfg['PANEL_PORT']}/  (log: {cfg['INSTANCE_PATH']}/logs/panel.log)")
    app.run(host=cfg["PANEL_HOST"], port=cfg["PANEL_PORT"], threaded=True, use_reloader=False,
            request_handler=NamelessRequestHandler)


def serve():
    """`make serve`: prepare once, then replace this process with gunicorn (its workers build their own apps)."""
    from models import db

    app = prepare()
    cfg = app.config
    with app.app_context():
        db.engine.dispose()  # no connection of ours should outlive the exec
    print(f"panel: http://{cfg['PANEL_HOST']}:{cfg['PANEL_PORT']}/ under gunicorn "
          f"(log: {cfg['INSTANCE_PATH']}/logs/panel.log, access log beside it)", flush=True)
    gunicorn = Path(sys.executable).with_name("gunicorn")
    os.execv(str(gunicorn), [str(gunicorn), "-c", str(ROOT / "gunicorn.conf.py")])


COMMANDS = {"run": main, "serve": serve, "prepare": prepare}

if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "run"
    if command not in COMMANDS:
        sys.exit(f"usage: python -m panel.launcher [{'|'.join(COMMANDS)}]")
    try:
        COMMANDS[command]()
    except SettingsError as exc:  # a bad value in the environment or .env: say which, no traceback
        sys.exit(f"{exc}\nFix it in the environment or in {ROOT / '.env'}, then start again.")
