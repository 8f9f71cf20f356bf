"""The URL map: every route of the panel, its methods, its view and the least role that may use it.

A route missing here does not exist; a route here without a role cannot be written. Views live in
the module named for their subject; what a JSON route accepts and answers is declared on the view
(panel/web/contract.py) and published at /api/openapi.json.
"""
from flask import Blueprint
from werkzeug.routing import BaseConverter

from models import ADMIN, OPERATOR, VIEWER
from panel.security.auth import PUBLIC
from panel.web import about, account, cluster, errors, health, hosts, pages, processes, quarantine, runs, schedules
from panel.web.answers import JSONAnswers

PAGES = [  # HTML, blueprint "pages"
    ("GET",      "/",                                          pages.dashboard,                 VIEWER),
    ("GET POST", "/login",                                     pages.login,                     PUBLIC),
    ("POST",     "/logout",                                    pages.logout,                    VIEWER),
    ("GET",      "/runs",                                      pages.runs_page,                 VIEWER),
    ("GET",      "/runs/<celery_task_id>",                     pages.run_page,                  VIEWER),
    ("GET",      "/workers",                                   pages.workers_page,              VIEWER),
    ("GET",      "/audit",                                     pages.audit_page,                ADMIN),
    ("GET POST", "/account",                                   account.account_page,            VIEWER),
]

API = [  # JSON, blueprint "api"
    # The dashboard's first endpoints: Beat's legacy status routes, the toolbar, cancellation.
    ("GET",      "/celery_status",                             processes.celery_status,         VIEWER),
    ("POST",     "/restart_celery_beat",                       processes.restart_celery_beat,   OPERATOR),
    ("GET",      "/scheduler/celery-status/",                  processes.scheduler_celery_status, VIEWER),
    ("POST",     "/scheduler/start-celery/",                   processes.start_celery,          OPERATOR),
    ("POST",     "/scheduler/stop-celery/",                    processes.stop_celery,           OPERATOR),
    ("POST",     "/scheduler/run-all-tasks/",                  schedules.run_all_tasks,         OPERATOR),
    ("POST",     "/scheduler/stop-all-tasks/",                 schedules.stop_all_tasks,        OPERATOR),
    ("POST",     "/scheduler/start-all-tasks/",                schedules.start_all_tasks,       OPERATOR),
    ("POST",     "/scheduler/cancel-task/<int:task_id>/",      schedules.cancel_task,           OPERATOR),
    ("POST",     "/scheduler/cancel-run/<celery_task_id>/",    runs.cancel_run,                 OPERATOR),
    ("POST",     "/scheduler/stop-retries/<celery_task_id>/",  runs.stop_retries,               OPERATOR),
    ("GET",      "/api/logs/<any(worker, beat):program>",      processes.process_log,           VIEWER),
    # Supervisor on each host (SUPERVISORS): its worker and Beat, in one pane.
    ("GET",      "/api/hosts",                                 hosts.list_hosts,                VIEWER),
    ("POST",     "/api/hosts/<host>/<any(worker, beat):program>/start",   hosts.start_program,  OPERATOR),
    ("POST",     "/api/hosts/<host>/<any(worker, beat):program>/stop",    hosts.stop_program,   OPERATOR),
    ("POST",     "/api/hosts/<host>/<any(worker, beat):program>/restart", hosts.restart_program, OPERATOR),
    # Schedules: what Beat sends (served at /api/tasks: the dashboard calls a schedule a "task").
    ("GET",      "/api/tasks",                                 schedules.list_tasks,            VIEWER),
    ("POST",     "/api/tasks",                                 schedules.create_task,           OPERATOR),
    ("GET",      "/api/tasks/<int:task_id>",                   schedules.get_task,              VIEWER),
    ("PUT",      "/api/tasks/<int:task_id>",                   schedules.edit_task,             OPERATOR),
    ("DELETE",   "/api/tasks/<int:task_id>",                   schedules.delete_task,           OPERATOR),
    ("POST",     "/api/tasks/<int:task_id>/run",               schedules.run_task,              OPERATOR),
    ("POST",     "/api/tasks/<int:task_id>/enable",            schedules.enable_task,           OPERATOR),
    ("POST",     "/api/tasks/<int:task_id>/disable",           schedules.disable_task,          OPERATOR),
    ("GET",      "/api/tasks/<int:task_id>/runs",              schedules.task_runs,             VIEWER),
    # Runs: one execution each, from send to end.
    ("GET",      "/api/runs",                                  runs.list_runs,                  VIEWER),
    ("GET",      "/api/runs/export",                           runs.export_runs,                VIEWER),
    ("GET",      "/api/runs/per-minute",                       runs.runs_per_minute,            VIEWER),
    ("POST",     "/api/runs/delete",                           runs.delete_runs,                ADMIN),
    ("POST",     "/api/runs/cleanup",                          runs.cleanup_runs,               ADMIN),
    ("POST",     "/api/runs/bulk",                             runs.bulk_runs,                  OPERATOR),
    ("GET",      "/api/runs/<run_id:celery_task_id>",          runs.get_run,                    VIEWER),
    ("POST",     "/api/runs/<run_id:celery_task_id>/retry",    runs.retry_run,                  OPERATOR),
    # The cluster: workers, the task types they register, queues.
    ("GET",      "/api/workers",                               cluster.list_workers,            VIEWER),
    ("GET",      "/api/workers/<name>",                        cluster.worker_detail,           VIEWER),
    ("POST",     "/api/workers/<name>/shutdown",               cluster.shutdown,                OPERATOR),
    ("POST",     "/api/workers/<name>/pool-restart",           cluster.pool_restart,            OPERATOR),
    ("POST",     "/api/workers/<name>/pool-grow",              cluster.pool_grow,               OPERATOR),
    ("POST",     "/api/workers/<name>/pool-shrink",            cluster.pool_shrink,             OPERATOR),
    ("POST",     "/api/workers/<name>/autoscale",              cluster.autoscale,               OPERATOR),
    ("GET",      "/api/registered-tasks",                      cluster.registered_tasks,        VIEWER),
    ("POST",     "/api/registered-tasks/<task_name>/send",     cluster.send_task,               OPERATOR),
    ("POST",     "/api/registered-tasks/<task_name>/rate-limit", cluster.rate_limit,            OPERATOR),
    ("POST",     "/api/registered-tasks/<task_name>/time-limit", cluster.time_limit,            OPERATOR),
    ("GET",      "/api/queues",                                cluster.list_queues,             VIEWER),
    ("POST",     "/api/queues/<name>/purge",                   cluster.purge_queue,             OPERATOR),
    ("POST",     "/api/queues/<name>/pause",                   cluster.pause_queue,             OPERATOR),
    ("POST",     "/api/queues/<name>/resume",                  cluster.resume_queue,            OPERATOR),
    ("GET",      "/api/queues/<name>/messages",                cluster.queue_messages,          VIEWER),
    # Messages a worker died on again and again, out of their queue.
    ("GET",      "/api/quarantine",                            quarantine.list_quarantine,      VIEWER),
    ("GET",      "/api/quarantine/<celery_task_id>",           quarantine.quarantined_message,  VIEWER),
    ("DELETE",   "/api/quarantine/<celery_task_id>",           quarantine.delete_quarantined,   OPERATOR),
    ("POST",     "/api/quarantine/<celery_task_id>/requeue",   quarantine.requeue_quarantined,  OPERATOR),
    # Health: the view, the watchdog, the restart history, alerts, Prometheus.
    ("GET",      "/api/health",                                health.health_view,              VIEWER),
    ("GET",      "/api/watchdog",                              health.watchdog_states,          VIEWER),
    ("POST",     "/api/watchdog/<any(worker, beat):program>",  health.switch_watchdog,          OPERATOR),
    ("GET",      "/api/process-events",                        health.process_events,           VIEWER),
    ("GET",      "/api/alerts",                                health.list_alerts,              VIEWER),
    ("POST",     "/api/alerts/test",                           health.test_alert,               ADMIN),
    ("GET",      "/metrics",                                   health.prometheus_metrics,       VIEWER),
    # The panel itself: liveness, who you are, the audit log, this API's document.
    ("GET",      "/healthz",                                   about.healthz,                   PUBLIC),
    ("GET",      "/api/me",                                    about.me,                        VIEWER),
    ("POST",     "/api/me/password",                           account.change_password,         VIEWER),
    ("GET",      "/api/audit",                                 about.audit_events,              ADMIN),
    ("GET",      "/api/openapi.json",                          about.openapi_document,          VIEWER),
]


class RunIdConverter(BaseConverter):
    """A run's Celery task id: any path segment but the words /api/runs/ uses for itself."""

    regex = r"(?!(?:export|per-minute|delete|cleanup|bulk)/?$)[^/]+"


def register(app):
    """Register the pages and the API from the map above, each route with the role it needs."""
    app.url_map.converters["run_id"] = RunIdConverter
    app.json = JSONAnswers(app)
    access = app.extensions.setdefault("access", {})
    for name, routes in (("pages", PAGES), ("api", API)):
        blueprint = Blueprint(name, __name__)
        for methods, path, view, role in routes:
            blueprint.add_url_rule(path, view_func=view, methods=methods.split())
            access[f"{name}.{view.__name__}"] = role
        app.register_blueprint(blueprint)
    app.context_processor(pages.template_globals)
    errors.register_error_handlers(app)
