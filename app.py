"""The Flask app factory: `flask --app app run` or `create_app(config)` in tests."""
import os

from flask import Flask
from flask_migrate import Migrate

from models import db
from panel.celery_setup import celery_init_app
from panel.config import ROOT, load_settings
from panel.database import engine_options
from panel.logs import setup_logging

migrate = Migrate()


def create_app(config=None, env_file=None):
    """Code defaults, then `.env` (or env_file) and the environment, then the test dict."""
    app = Flask(__name__, instance_path=None, root_path=str(ROOT))
    app.config.update(load_settings(env_file))
    app.config.update(config or {})
    app.instance_path = app.config["INSTANCE_PATH"]
    for sub in ("logs", "run"):
        os.makedirs(os.path.join(app.instance_path, sub), exist_ok=True)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(app.config["SQLALCHEMY_DATABASE_URI"])
    setup_logging(app.instance_path)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True)
    celery_init_app(app)

    from panel.host.history import intent_for, recorder_for
    from panel.host.supervisor import Supervisor
    app.extensions["supervisor"] = Supervisor(app.config, app.extensions["celery"], on_event=recorder_for(app),
                                              on_intent=intent_for(app))

    from panel import cli
    from panel.security.auth import init_auth
    from panel.web.alerts import alerts_api
    from panel.web.cluster import workers_api
    from panel.web.errors import register_error_handlers
    from panel.web.health import health_api
    from panel.web.pages import pages
    from panel.web.processes import api
    from panel.web.runs import runs_api
    from panel.web.schedules import tasks_api
    app.register_blueprint(pages)
    app.register_blueprint(api)
    app.register_blueprint(tasks_api)
    app.register_blueprint(runs_api)
    app.register_blueprint(workers_api)
    app.register_blueprint(health_api)
    app.register_blueprint(alerts_api)
    register_error_handlers(app)
    init_auth(app)
    cli.register(app)
    return app
