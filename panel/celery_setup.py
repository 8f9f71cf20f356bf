"""Celery wired to the Flask app in one function (Flask's examples/celery pattern)."""
import logging

from celery import Celery, Task

from panel import worker_commands  # noqa: F401 - registers the panel's own inspect command
from panel.broker import results
from panel.runlog import recorder

BUILTIN_TASK_MODULES = ("panel.embedded",)


def settings(cfg):
    """The Celery settings of the embedded app, from the panel's own."""
    user_modules = tuple(m.strip() for m in cfg["CELERY_IMPORTS"].split(",") if m.strip())
    return dict(
        broker_url=cfg["CELERY_BROKER_URL"],
        result_backend=results.loadable(cfg["CELERY_RESULT_BACKEND"]),
        timezone=cfg["CELERY_TIMEZONE"],
        enable_utc=True,
        imports=BUILTIN_TASK_MODULES + user_modules,
        task_track_started=True,
        result_extended=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
        broker_connection_retry_on_startup=True,
        # Short socket timeouts so a dead broker is an answer in seconds, not a hang.
        broker_transport_options={"socket_connect_timeout": 3, "socket_timeout": 5},
        redis_socket_connect_timeout=3,
        redis_socket_timeout=5,
        result_backend_transport_options={"socket_connect_timeout": 3},
        beat_max_loop_interval=cfg["BEAT_MAX_INTERVAL_S"],
        beat_scheduler="panel.beat.scheduler:DatabaseScheduler",
        worker_hijack_root_logger=False,
        worker_pool_restarts=True,  # the panel's "pool restart" control (new processes after their current task)
        worker_max_tasks_per_child=cfg["WORKER_MAX_TASKS_PER_CHILD"] or None,
    )


def celery_init_app(app):
    """Create the Celery app from the panel's settings and register our signals."""
    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.import_name, task_cls=FlaskTask)
    celery.conf.update(settings(app.config))
    celery.set_default()
    # The panel validates task names too, so it imports the same modules the worker does;
    # a broken user module must not take the panel down with it (the worker reports it).
    try:
        celery.loader.import_default_modules()
    except Exception:
        logging.getLogger("panel.celery").exception("could not import the task modules %s", celery.conf.imports)
    app.extensions["celery"] = celery
    celery.flask_app = app
    recorder.connect(app, celery)
    return celery
