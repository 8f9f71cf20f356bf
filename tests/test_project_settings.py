"""The attached project's real settings, read without importing it: from its running worker (`inspect conf`), else
from `celery -A proj report` run with its own celery; each setting that blinds the panel named with the line to add,
a broker that is not the project's reported, and the project's broker used when the panel was given none."""
import sys

import pytest

from app import create_app
from panel.cluster import project_conf
from panel.config import load_settings, project_first
from panel.host import project_cli
from tests.helpers import CELERY, PROJECT, UI_WAIT_MS, api_client, start_worker, stop_everything

PROJECT_SETTINGS = dict(CELERY_APP="proj", CELERY_WORKDIR=str(PROJECT), CELERY_BIN=CELERY)


@pytest.fixture(autouse=True)
def fresh_reads():
    """Each test reads the project anew (what an earlier test cached is not its project)."""
    project_conf.forget()
    yield
    project_conf.forget()


@pytest.fixture
def report_runs(monkeypatch):
    """Every `celery report` the panel runs, counted (the real one runs)."""
    runs = []
    real = project_cli.report

    def counted(*args, **kwargs):
        runs.append(args)
        return real(*args, **kwargs)
    monkeypatch.setattr(project_cli, "report", counted)
    return runs


def _project(app):
    answer = api_client(app).get("/api/health")
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["project"]


def _warned(project):
    return {warning["setting"]: warning for warning in project["warnings"]}


def _check(app):
    """`flask celery-check`: its exit code and text."""
    result = app.test_cli_runner().invoke(args=["celery-check"])
    return result.exit_code, result.output


def test_health_names_ignored_results_and_result_extended_from_the_running_worker(monkeypatch, attached):
    monkeypatch.setenv("PROJ_IGNORE_RESULT", "1")
    start_worker(attached)
    project = _project(attached)
    assert project["source"] == "workers" and project["workers"], project
    warned = _warned(project)
    assert warned["task_ignore_result"]["line"] == "task_ignore_result = False"
    assert warned["result_extended"]["line"] == "result_extended = True"
    assert warned["task_send_sent_event"]["line"] == "task_send_sent_event = True"
    assert set(warned["result_extended"]["workers"]) == set(project["workers"])
    # The project tracks starts, and the worker the panel starts has -E (its command line, not its conf, says so).
    assert "task_track_started" not in warned and "worker_send_task_events" not in warned
    assert project["settings"]["task_ignore_result"] is True and project["settings"]["result_extended"] is False
    assert "broker_url" not in warned and project["broker_from"] == "panel"


def test_on_rabbitmq_the_workers_conf_is_read_and_their_masked_broker_is_the_panels(monkeypatch, make_app,
                                                                                    rabbitmq_url):
    monkeypatch.setenv("PROJ_IGNORE_RESULT", "1")
    app = make_app(CELERY_BROKER_URL=rabbitmq_url, CELERY_WORKER_ARGS="--concurrency 1", **PROJECT_SETTINGS)
    start_worker(app)
    project = _project(app)
    assert project["source"] == "workers" and "guest:********@" in project["broker_url"], project
    warned = _warned(project)
    assert "broker_url" not in warned and "result_backend" not in warned, warned
    assert warned["task_ignore_result"]["line"] == "task_ignore_result = False"


def test_without_a_worker_the_settings_come_from_celery_report_once_for_many_polls(monkeypatch, attached,
                                                                                  report_runs):
    monkeypatch.setenv("PROJ_TRACK_STARTED", "0")
    project = _project(attached)
    assert project["source"] == "report" and project["workers"] == [], project
    warned = _warned(project)
    assert warned["task_track_started"]["line"] == "task_track_started = True"
    assert warned["worker_send_task_events"]["line"].startswith("worker_send_task_events = True")
    assert "task_ignore_result" not in warned
    polls = [_project(attached) for _ in range(3)]
    assert all(poll == project for poll in polls), "a health poll read the project again instead of its cache"
    assert len(report_runs) == 1, report_runs


def test_celery_check_names_each_blinding_setting_with_its_line(monkeypatch, attached):
    monkeypatch.setenv("PROJ_IGNORE_RESULT", "1")
    monkeypatch.setenv("PROJ_TRACK_STARTED", "0")
    code, out = _check(attached)
    assert code == 0, out  # warnings, not errors: the panel still works
    assert "settings    from `celery report`" in out
    for line in ("task_ignore_result = False", "result_extended = True", "task_track_started = True",
                 "task_send_sent_event = True"):
        assert f"add to the project: {line}" in out, out


def test_a_project_on_another_broker_is_reported_by_health_and_celery_check(monkeypatch, attached, redis_server):
    theirs = f"{redis_server.url.rsplit('/', 1)[0]}/9"
    monkeypatch.setenv("PROJ_BROKER_URL", theirs)
    project = _project(attached)
    assert project["source"] == "report"
    warning = _warned(project)["broker_url"]
    assert warning["value"].endswith("/9") and "set CELERY_BROKER_URL" in warning["message"], warning
    project_conf.forget()
    code, out = _check(attached)
    assert "⚠ broker_url: the panel uses" in out and "set CELERY_BROKER_URL" in out, out


def test_the_panel_takes_the_projects_broker_when_given_none(monkeypatch, tmp_path, redis_server):
    for name in ("CELERY_BROKER_URL", "BROKER_URL", "CELERY_RESULT_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    theirs = f"{redis_server.url.rsplit('/', 1)[0]}/8"
    monkeypatch.setenv("PROJ_BROKER_URL", theirs)
    empty_env = tmp_path / "empty.env"
    empty_env.write_text("")
    app = create_app({"INSTANCE_PATH": str(tmp_path / "instance"), "TESTING": True, "API_CHECK_RESPONSES": True,
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'panel.db'}", **PROJECT_SETTINGS},
                     env_file=empty_env)
    try:
        from models import db
        with app.app_context():
            db.create_all()
        assert app.config["CELERY_BROKER_URL"] == theirs and app.config["BROKER_FROM"] == "project"
        assert app.extensions["celery"].conf.broker_url == theirs
        assert app.config["CELERY_RESULT_BACKEND"] == theirs  # the default follows the broker it derives from
        project = _project(app)
        assert project["broker_from"] == "project" and "broker_url" not in _warned(project), project
        assert app.extensions["supervisor"].child_env()["CELERY_BROKER_URL"] == theirs
    finally:
        stop_everything(app)
    assert "proj" not in sys.modules, "the panel imported the project"


def test_an_explicit_panel_broker_wins_over_the_projects(monkeypatch, make_app, redis_server):
    monkeypatch.setenv("PROJ_BROKER_URL", f"{redis_server.url.rsplit('/', 1)[0]}/7")
    app = make_app(**PROJECT_SETTINGS)
    assert app.config["CELERY_BROKER_URL"] == redis_server.url and app.config["BROKER_FROM"] == "panel"
    assert app.extensions["celery"].conf.broker_url == redis_server.url


@pytest.mark.parametrize("masked, usable", [
    ("redis://:********@127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),  # Redis prints a mask with or without one
    ("amqp://guest:********@127.0.0.1:5672/vh", None),  # a password the panel cannot read
    ("redis://127.0.0.1:6379/1", "redis://127.0.0.1:6379/1"),
    ("django-db", "django-db"),
])
def test_a_masked_url_is_used_only_when_nothing_real_was_hidden(masked, usable):
    assert project_conf.usable(masked) == usable


def test_report_settings_are_read_in_every_spelling():
    text = ("software -> celery:5.7.0\nsettings -> transport:redis results:disabled://\n\n"
            "broker_url: 'redis://:********@127.0.0.1:6379/0'\nCELERY_TASK_IGNORE_RESULT: True\n"
            "CELERY_TRACK_STARTED: True\nbeat_schedule: \n 'tick': {'schedule': 1.0}}\n")
    conf = project_conf.wanted(project_conf.parse_report(text))
    assert conf["task_ignore_result"] is True and conf["task_track_started"] is True
    assert conf["broker_url"] == "redis://:********@127.0.0.1:6379/0" and conf["result_extended"] is False


def test_health_card_shows_each_blinding_setting_with_its_line(monkeypatch, attached, logged_in):
    monkeypatch.setenv("PROJ_IGNORE_RESULT", "1")
    page = logged_in(attached, "viewer-d", "viewer")
    card = page.locator("#h-project")
    card.locator("li").first.wait_for(timeout=UI_WAIT_MS)
    text = card.inner_text()
    assert "celery report" in text, text
    for line in ("task_ignore_result = False", "result_extended = True"):
        assert f"add to the project: {line}" in text, text
    assert page.errors == [], page.errors


@pytest.mark.parametrize("given, source", [({}, "default"),
                                           ({"CELERY_BROKER_URL": "redis://127.0.0.1:6379/3"}, "panel"),
                                           ({"BROKER_URL": "redis://127.0.0.1:6379/3"}, "panel")])
def test_a_broker_set_for_the_panel_in_any_spelling_wins_over_the_projects(monkeypatch, tmp_path, given, source):
    for name in ("CELERY_BROKER_URL", "BROKER_URL", "CELERY_RESULT_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    for name, value in given.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PANEL_INSTANCE_PATH", str(tmp_path))
    values = load_settings(tmp_path / "none.env")
    assert values["BROKER_FROM"] == source and values["RESULT_BACKEND_FROM"] == "default"
    changes = project_first(values, {"broker_url": "amqp://u:p@mq:5672/v", "result_backend": None})
    if source == "panel":
        assert "CELERY_BROKER_URL" not in changes and values["CELERY_BROKER_URL"] == "redis://127.0.0.1:6379/3"
    else:
        assert changes["CELERY_BROKER_URL"] == "amqp://u:p@mq:5672/v" and changes["BROKER_FROM"] == "project"
        assert changes["CELERY_RESULT_BACKEND"].startswith("db+")  # RabbitMQ keeps no results: the panel's database
