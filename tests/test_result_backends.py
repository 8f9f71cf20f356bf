"""Every result store a project may keep its results in, read by the panel: Celery's SQLAlchemy table (SQLite and
PostgreSQL), rpc:// (which keeps nothing, and is said so), and django-celery-results' table, read through
RESULTS_DATABASE_URL from a real Django project in a virtualenv of its own that the panel never imports.

Runs are sent by the project itself, with its own celery in its own folder, and executed by its real worker."""
import importlib.util
import json
import shutil
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from panel.broker import results
from panel.config import ROOT
from panel.runlog import from_events
from tests.helpers import CELERY, PROJECT, api_client, ended, run_row, start_worker, tool, wait_for

WAIT_S = 60
DJANGO_SOURCE = Path(__file__).with_name("django_project")
PIP_TIMEOUT_S = 600


@pytest.fixture(scope="session")
def django_venv(tmp_path_factory):
    """The Django project's own virtualenv, built once per session from its pinned requirements."""
    folder = tmp_path_factory.mktemp("django_venv")
    subprocess.run([shutil.which("python3") or "python3", "-m", "venv", str(folder)], check=True, timeout=120)
    out = subprocess.run([str(folder / "bin" / "pip"), "install", "-q", "-r", str(DJANGO_SOURCE / "requirements.txt")],
                         capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return folder


@pytest.fixture
def django_project(django_venv, tmp_path):
    """A copy of tests/django_project with its database migrated by its own manage.py."""
    folder = tmp_path / "djproject"
    shutil.copytree(DJANGO_SOURCE, folder, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3"))
    out = subprocess.run([str(django_venv / "bin" / "python"), "manage.py", "migrate", "--noinput"], cwd=folder,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return folder


@pytest.fixture
def django_attached(make_app, django_project, django_venv):
    """The panel attached to the Django project, its results read from the project's SQLite database."""
    app = make_app(CELERY_APP="djproj", CELERY_WORKDIR=str(django_project),
                   CELERY_BIN=str(django_venv / "bin" / "celery"), CELERY_WORKER_ARGS="--concurrency 2",
                   CELERY_RESULT_BACKEND="django-db",
                   RESULTS_DATABASE_URL=f"sqlite:///{django_project / 'db.sqlite3'}")
    yield app
    assert importlib.util.find_spec("django") is None, "Django is the project's, never the panel's"
    assert not any(name.startswith(("djproj", "django")) for name in sys.modules), "the panel imported the project"


def _env(app, **extra):
    """The environment a person runs the panel's tools with: its settings, RESULTS_DATABASE_URL included."""
    env = dict(app.extensions["supervisor"].child_env(), FLASK_APP="app",
               RESULTS_DATABASE_URL=app.config.get("RESULTS_DATABASE_URL", ""))
    env.update(extra)
    return env


def _call(app, task, args="[]", kwargs="{}"):
    """Send a task as the project does, from its own code in its folder (a Django project from Django's shell,
    where its apps are loaded); its id."""
    target = app.extensions["supervisor"].host.target
    argv = [target.celery_bin, "-A", target.app, "call", task, "--args", args, "--kwargs", kwargs]
    if target.app == "djproj":
        code = (f"from djproj.celery import app; print(app.send_task({task!r}, args={args}, kwargs={kwargs}).id)")
        argv = [str(Path(target.celery_bin).with_name("python")), "manage.py", "shell", "-c", code]
    out = subprocess.run(argv, cwd=target.workdir, env=_env(app), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.strip().splitlines()[-1]


def _celery_check(app, **extra):
    return subprocess.run([str(ROOT / ".venv" / "bin" / "flask"), "--app", "app", "celery-check", "--json"],
                          cwd=str(ROOT), env=_env(app, **extra), capture_output=True, text=True, timeout=180)


def _recorder_gone():
    wait_for(lambda: not any(t.name == "run-events" and t.is_alive() for t in threading.enumerate()), 10,
             "the event recorder to stop")


def _read_back_while_away(app, add, fail):
    """Runs of `add` and `fail` that end while the panel's recorder is stopped come back when it starts again."""
    celery = app.extensions["celery"]
    stop = from_events.start(app)
    start_worker(app)
    ended(app, _call(app, add, "[0, 0]"), WAIT_S)  # the recorder has written: its mark of the newest event is set
    stop.set()
    _recorder_gone()
    away = [_call(app, add, f"[{n}, 1]") for n in range(2)] + [_call(app, fail, '["while away"]')]
    wait_for(lambda: all(results.stored(celery, task_id) for task_id in away), WAIT_S, "the worker to end them")
    assert all(run_row(app, task_id) is None for task_id in away), "recorded while the recorder was stopped?"
    stop = from_events.start(app)
    try:
        assert [ended(app, task_id, WAIT_S).result for task_id in away[:2]] == ["1", "2"]
        failed = ended(app, away[2], WAIT_S)
        assert (failed.status, failed.state) == ("failed", "FAILURE") and "while away" in failed.error
        assert "ValueError: while away" in failed.traceback
    finally:
        stop.set()
        _recorder_gone()
    return away


def test_celery_check_finds_the_django_db_store_and_the_health_view_names_it(django_attached):
    out = _celery_check(django_attached)
    facts = json.loads(out.stdout)
    assert out.returncode == 0, out.stdout + out.stderr
    assert facts["project"]["loads"], facts["project"]
    assert facts["backend"]["ok"] and facts["backend"]["kind"] == "django-db", facts["backend"]
    assert facts["backend"]["listable"] and facts["backend"]["latency_ms"] is not None
    health = api_client(django_attached, "viewer").get("/api/health").get_json()
    assert (health["backend"]["ok"], health["backend"]["kind"]) == (True, "django-db"), health["backend"]


def test_celery_check_says_to_set_results_database_url_when_the_project_keeps_results_in_django_db(django_attached):
    out = _celery_check(django_attached, RESULTS_DATABASE_URL="")
    assert out.returncode == 1, out.stdout + out.stderr
    backend = json.loads(out.stdout)["backend"]
    assert not backend["ok"] and "set RESULTS_DATABASE_URL" in backend["error"], backend
    assert "unreachable" not in backend["error"] and "Name or service" not in backend["error"]
    words = subprocess.run([str(ROOT / ".venv" / "bin" / "flask"), "--app", "app", "celery-check"], cwd=str(ROOT),
                           env=_env(django_attached, RESULTS_DATABASE_URL=""), capture_output=True, text=True,
                           timeout=180).stdout
    assert "backend     ✗ django-db the project keeps its results with django-celery-results" in words, words


def test_a_django_db_run_that_ended_while_the_panel_was_away_is_read_back_with_its_result(django_attached):
    away = _read_back_while_away(django_attached, "djproj.add", "djproj.fail")
    stored = results.stored(django_attached.extensions["celery"], away[1])
    assert (stored["state"], stored["result"], stored["name"]) == ("SUCCESS", "2", "djproj.add"), stored
    assert stored["args"] == [1, 1] and stored["kwargs"] == {}, "the worker's repr of the args, read back exactly"
    assert stored["worker"] and stored["date_done"].endswith("Z"), stored


def test_task_manager_status_and_the_run_page_read_a_django_db_result(django_attached):
    start_worker(django_attached)
    celery = django_attached.extensions["celery"]
    task_id = _call(django_attached, "djproj.echo", "[7]", '{"label": "seven"}')
    wait_for(lambda: results.stored(celery, task_id), WAIT_S, "the worker to store its result")
    out = tool(django_attached, "task_manager.py", "status", task_id, env=_env(django_attached))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "result backend: SUCCESS" in out.stdout and "'label': 'seven'" in out.stdout, out.stdout
    page = api_client(django_attached, "viewer").get(f"/runs/{task_id}")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "djproj.echo" in text and "seven" in text, text[-2000:]
    meta = results.meta(celery, task_id)
    assert (meta["args"], meta["kwargs"]) == ([7], {"label": "seven"}), "retry's arguments, from the store"


def test_django_db_args_that_are_not_a_literal_are_shown_as_text_and_never_guessed(django_attached):
    store = results.store_of(django_attached.extensions["celery"])
    row = store.meta({"task_id": "t-1", "status": "SUCCESS", "result": "1", "content_type": "application/json",
                      "content_encoding": "utf-8", "task_args": json.dumps("(<object at 0x7f>,)"),
                      "task_kwargs": json.dumps("{}"), "date_done": datetime.now(timezone.utc)})
    assert row["args"] is None and row["argsrepr"] == "(<object at 0x7f>,)" and row["kwargs"] == {}


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_attached(request, make_app, tmp_path):
    """The sample project with Celery's SQLAlchemy backend: its worker writes celery_taskmeta, the panel reads it."""
    if request.param == "sqlite":
        url = f"db+sqlite:///{tmp_path / 'results.db'}"
    else:
        url = "db+" + request.getfixturevalue("pg_database").replace("postgresql://", "postgresql+psycopg://", 1)
    app = make_app(CELERY_APP="proj", CELERY_WORKDIR=str(PROJECT), CELERY_BIN=CELERY,
                   CELERY_WORKER_ARGS="--concurrency 2", CELERY_RESULT_BACKEND=url)
    yield app
    assert "proj" not in sys.modules and "proj.celery" not in sys.modules, "the panel imported the project"


def test_runs_that_ended_while_away_are_read_back_from_celerys_sql_table(sql_attached):
    away = _read_back_while_away(sql_attached, "proj.add", "proj.fail")
    celery = sql_attached.extensions["celery"]
    listed = {m["task_id"]: m for m in results.ended_since(celery, datetime.now(timezone.utc) - timedelta(hours=1))}
    assert set(away) <= set(listed) and listed[away[1]]["result"] == 2, listed
    assert isinstance(listed[away[2]]["result"], ValueError) and listed[away[2]]["date_done"].tzinfo
    assert not results.ended_since(celery, datetime.now(timezone.utc) + timedelta(hours=1))
    out = tool(sql_attached, "task_manager.py", "status", away[0], env=_env(sql_attached))
    assert out.returncode == 0 and "result backend: SUCCESS" in out.stdout and "stored result: 1" in out.stdout, \
        out.stdout + out.stderr
    backend = json.loads(_celery_check(sql_attached).stdout)["backend"]
    assert backend["ok"] and backend["kind"] == "sqlalchemy" and backend["listable"], backend


def test_rpc_keeps_no_results_and_every_answer_says_so_instead_of_unreachable(make_app):
    app = make_app(CELERY_APP="proj", CELERY_WORKDIR=str(PROJECT), CELERY_BIN=CELERY, CELERY_RESULT_BACKEND="rpc://")
    out = _celery_check(app)
    backend = json.loads(out.stdout)["backend"]
    assert out.returncode == 0 and backend["ok"] and backend["kind"] == "rpc" and not backend["listable"], backend
    assert "keeps no results" in backend["note"], backend
    health = api_client(app, "viewer").get("/api/health").get_json()["backend"]
    assert health["kind"] == "rpc" and "keeps no results" in health["note"], health
    page = api_client(app, "viewer").get("/runs/7b5c1f0e-0000-4000-8000-000000000001").get_data(as_text=True)
    assert "kept nowhere" in page and "unreachable" not in page, page[-1500:]
    celery = app.extensions["celery"]
    assert results.state(celery, "any")["kept"] is False
    assert results.ended_since(celery, datetime.now(timezone.utc)) == []
    assert "unreachable" not in out.stdout
