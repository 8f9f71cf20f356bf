"""The user's worker is left alone: every page, every API read and every worker action of the panel leaves no
error in the log of the project's own worker, and a dead worker's crash log never blames what the panel caused.

The panel is attached to tests/sample_project (never imported) and starts its worker; the worker writes its log
where the supervisor puts it (instance/logs/worker.log), and that file is what the tests read.
"""
import os
import re
import signal

import pytest

from models import QuarantinedMessage, db
from panel import background
from panel.host.processes import WORKER
from panel.supervision import crashlog, quarantine
from tests.helpers import CELERY, PROJECT, api_client, ended, process_gone, run_row, start_project_celery, wait_for

WAIT_S = 40
ERRORS = re.compile(r"ERROR/|CRITICAL/|Traceback \(most recent call last\)|pidbox command error")


@pytest.fixture(params=["redis", "rabbitmq"])
def attached_on(request, make_app, redis_server):
    """The sample project attached on each broker, its worker started by the panel, the background running."""
    broker = redis_server.url if request.param == "redis" else request.getfixturevalue("rabbitmq_url")
    app = make_app(CELERY_APP="proj", CELERY_WORKDIR=str(PROJECT), CELERY_BIN=CELERY, CELERY_BROKER_URL=broker,
                   CELERY_RESULT_BACKEND=redis_server.url, CELERY_WORKER_ARGS="--concurrency 2")
    handle = background.start(app)
    try:
        wait_for(handle.acting.is_set, 10, "the background duties to start")
        start_project_celery(app, WAIT_S)
        yield app
    finally:
        handle.stop()


def worker_log(app):
    return app.extensions["supervisor"].log_path(WORKER).read_text(errors="replace")


def sent(app, task, args):
    answer = api_client(app, "operator").post(f"/api/registered-tasks/{task}/send", json={"args": args})
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["celery_task_id"]


def every_get_url(app, values):
    """Every GET rule of the URL map with its path parameters filled with real values; a parameter the test does
    not know fails it, so a new route cannot escape."""
    urls = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods:
            continue
        missing = set(rule.arguments) - set(values(rule))
        assert not missing, f"{rule.rule}: no real value for {missing}"
        urls.append(rule.build({name: values(rule)[name] for name in rule.arguments}, append_unknown=False)[1])
    return sorted(set(urls))


def test_every_page_api_read_and_worker_action_leaves_the_projects_worker_log_without_error(attached_on):
    app = attached_on
    node = app.extensions["supervisor"].nodename
    done = sent(app, "proj.add", [1, 2])
    ended(app, done, WAIT_S)
    made = api_client(app, "operator").post("/api/tasks", json={"name": "add often", "task": "proj.add",
                                                                "args": [2, 3], "interval_seconds": 3600})
    assert made.status_code in (200, 201), made.get_json()
    schedule = made.get_json()["id"]
    log_before = worker_log(app)
    assert f"proj.add[{done}] received" in log_before, "the log the test reads is the worker's"

    def values(rule):
        return {"celery_task_id": done, "task_id": schedule, "program": "worker", "filename": "panel.js",
                "name": node if rule.rule.startswith("/api/workers/") else "celery"}
    admin = api_client(app, "admin")
    for url in every_get_url(app, values):
        assert admin.get(url).status_code < 500, url
    operator = api_client(app, "operator")
    running = sent(app, "proj.slow", [30])
    wait_for(lambda: run_row(app, running).status == "running", WAIT_S, "the slow run to start")
    actions = [(f"/api/workers/{node}/pool-restart", None), (f"/api/workers/{node}/pool-grow", {"n": 1}),
               (f"/api/workers/{node}/pool-shrink", {"n": 1}), (f"/api/workers/{node}/autoscale", {"max": 4, "min": 1}),
               ("/api/queues/celery/pause", None), ("/api/queues/celery/resume", None),
               ("/api/registered-tasks/proj.add/rate-limit", {"rate_limit": "100/m"}),
               ("/api/registered-tasks/proj.add/time-limit", {"soft": 30, "hard": 60}),
               (f"/scheduler/cancel-run/{running}/", None)]
    said = {url: operator.post(url, json=body) if body else operator.post(url) for url, body in actions}
    assert all(answer.status_code < 500 for answer in said.values()), \
        {url: (a.status_code, a.get_json()) for url, a in said.items()}
    for url in every_get_url(app, values):  # once more, with a worker that has run, been paused and cancelled
        assert admin.get(url).status_code < 500, url
    after = sent(app, "proj.add", [4, 5])  # the worker still serves, and its log is written up to here
    ended(app, after, WAIT_S)
    text = worker_log(app)
    assert f"proj.add[{after}] succeeded" in text
    errors = [line for line in text.splitlines() if ERRORS.search(line)]
    assert errors == [], "the panel caused errors in the project's worker log:\n" + "\n".join(errors)
    restart = said[f"/api/workers/{node}/pool-restart"].get_json()  # what it would raise on is said, not sent
    assert restart["reply"]["sent"] is False and "worker_pool_restarts" in restart["message"], restart
    assert said[f"/api/workers/{node}/autoscale"].get_json()["reply"]["sent"] is False
    assert said[f"/scheduler/cancel-run/{running}/"].status_code == 200


def test_a_killed_workers_crash_log_names_only_what_it_executed_never_the_panels_error(attached_on):
    """A real log: the older panel's own command provokes its error there, a detail call follows, then the worker is
    SIGKILLed while one run executes and after another ended: only the executing run is held, and the panel's
    error is not the cause named."""
    app = attached_on
    celery, supervisor = app.extensions["celery"], app.extensions["supervisor"]
    node = supervisor.nodename
    celery.control.broadcast("panel_detail", destination=[node], reply=True, timeout=5, limit=1)  # as before the fix
    assert api_client(app, "viewer").get(f"/api/workers/{node}").status_code == 200
    executing = sent(app, "proj.slow", [60])
    wait_for(lambda: run_row(app, executing).status == "running", WAIT_S, "the slow run to start")
    innocent = sent(app, "proj.add", [1, 1])
    ended(app, innocent, WAIT_S)
    [main] = supervisor.host.scan()[WORKER]
    os.kill(main.pid, signal.SIGKILL)
    wait_for(lambda: process_gone(main.pid, main.create_time), WAIT_S, "the worker to be gone")
    text = worker_log(app)
    assert "pidbox command error: KeyError('panel_detail')" in text, "the log holds the error the panel provoked"
    assert text.count("pidbox command error") == 1, "the detail call itself provoked no error"
    died = crashlog.death(text)
    assert died.held == ((executing, "proj.slow"),), died
    assert "panel_detail" not in died.evidence and "KeyError" not in died.evidence, died.evidence
    with app.app_context():
        assert quarantine.note_death(app.config, celery, supervisor.log_text(WORKER, quarantine.LOG_TAIL_BYTES)) is None
        suspects = {row.celery_task_id for row in db.session.query(QuarantinedMessage)}
        db.session.remove()
    assert innocent not in suspects and executing not in suspects, "it started: it did not kill the main process"
