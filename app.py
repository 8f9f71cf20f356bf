"""The Flask app factory: `flask --app app run` or `create_app(config)` in tests."""
import os

from flask import Flask
from flask_migrate import Migrate

from models import db
from panel import cli
from panel.broker import connection, remote
from panel.celery_setup import celery_init_app
from panel.cluster import project_conf
from panel.config import ROOT, load_settings, project_first
from panel.database import engine_options, in_schema
from panel.host.supervised import Supervised
from panel.host.supervisor import Supervisor
from panel.logs import setup_logging
from panel.runlog import tally  # noqa: F401 - its triggers come with every schema create_all makes
from panel.supervision.history import intent_for, recorder_for
from panel.target import Target

migrate = Migrate()


def _project_first(cfg, given):
    """An attached project's own broker and result backend where the panel was given none (its `celery report`)."""
    for key, source in (("CELERY_BROKER_URL", "BROKER_FROM"), ("CELERY_RESULT_BACKEND", "RESULT_BACKEND_FROM")):
        cfg[source] = "panel" if key in given else cfg[source]
    target = Target.of(cfg)
    if target.embedded or cfg["BROKER_FROM"] == cfg["RESULT_BACKEND_FROM"] == "panel":
        return
    project = project_conf.from_report(target, dict(os.environ))
    if project:
        cfg.update(project_first(cfg, {key: project_conf.usable(project[key]) for key in ("broker_url",
                                                                                         "result_backend")}))


def create_app(config=None, env_file=None, web=True):
    """Code defaults, then `.env` (or env_file) and the environment, then the test dict.

    The worker and Beat build theirs with web=False: they serve no page, so they load none of the web layer.
    """
    app = Flask(__name__, instance_path=None, root_path=str(ROOT))
    app.config.update(load_settings(env_file))
    app.config.update(config or {})
    _project_first(app.config, config or {})
    app.instance_path = app.config["INSTANCE_PATH"]
    for sub in ("logs", "run"):
        os.makedirs(os.path.join(app.instance_path, sub), exist_ok=True)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(app.config["SQLALCHEMY_DATABASE_URI"])
    setup_logging(app.instance_path)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True, include_name=in_schema)
    celery = celery_init_app(app)
    manager = Supervised if app.config["PROCESS_MANAGER"] == "supervisor" else Supervisor
    app.extensions["supervisor"] = manager(
        app.config, celery, check_broker=lambda: connection.ping(app.config["CELERY_BROKER_URL"]),
        worker_answers=lambda nodename, timeout_s: remote.ping_worker(celery, nodename, timeout_s=timeout_s),
        on_event=recorder_for(app), on_intent=intent_for(app))
    if web:  # imported here so that a Celery process never loads the web layer (its startup and exit are faster)
        from panel.security.auth import init_auth
        from panel.web import urls
        from panel.web.limits import bound_bodies
        bound_bodies(app)  # first: a body over the limit is refused before anything reads it
        urls.register(app)
        init_auth(app)
    cli.register(app)
    return app
