"""Set-up a newcomer relies on: settings precedence, migrations, the panel log, the launcher."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade

from app import create_app
from models import db
from panel import background, config, launcher
from panel.database import in_schema
from tests.helpers import api_client, end_process, free_port, wait_for


def test_env_file_is_read_and_the_environment_wins(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("BROKER_URL=redis://from-file:6379/0\nWORKER_CONCURRENCY=7\nSTOP_GRACE_S=3\n")
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    monkeypatch.setenv("WORKER_CONCURRENCY", "4")
    monkeypatch.setenv("PANEL_INSTANCE_PATH", str(tmp_path / "inst"))
    settings = config.load_settings(env_file)
    assert settings["CELERY_BROKER_URL"] == "redis://from-file:6379/0"  # the older name BROKER_URL is accepted
    assert settings["WORKER_CONCURRENCY"] == 4 and settings["STOP_GRACE_S"] == 3.0
    assert settings["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'inst' / 'panel.db'}"
    assert (tmp_path / "inst" / "logs").is_dir()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrations_build_exactly_the_models_schema(tmp_path, redis_server, backend, request):
    url = f"sqlite:///{tmp_path / 'm.db'}" if backend == "sqlite" else request.getfixturevalue("pg_server")
    app = create_app({"INSTANCE_PATH": str(tmp_path), "SQLALCHEMY_DATABASE_URI": url,
                      "CELERY_BROKER_URL": redis_server.url})
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        upgrade()
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"include_name": in_schema}), db.metadata)
        assert diff == []
        db.drop_all()
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")


def test_control_actions_and_errors_go_to_the_panel_log(make_app):
    app = make_app(CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")
    client = api_client(app)
    client.post("/restart_celery_beat")
    client.post("/scheduler/start-celery/")
    text = (Path(app.config["INSTANCE_PATH"]) / "logs" / "panel.log").read_text()
    assert "restart of Celery Beat asked, but Beat is not running" in text
    assert "-> 503: broker unreachable" in text


def test_launcher_starts_a_private_redis_when_nothing_answers(tmp_path):
    port = free_port()
    outcome = launcher.ensure_broker(f"redis://127.0.0.1:{port}/0", str(tmp_path))
    pidfile = tmp_path / "redis" / "redis.pid"
    try:
        assert "started a private redis-server" in outcome
        assert launcher.ensure_broker(f"redis://127.0.0.1:{port}/0", str(tmp_path)) == "running"
    finally:
        pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 5, "redis pid file"))
        os.kill(pid, signal.SIGTERM)


def test_launcher_names_a_rabbitmq_that_does_not_answer_and_starts_no_redis_for_it(tmp_path):
    with pytest.raises(SystemExit) as stop:
        launcher.ensure_broker(f"amqp://guest:guest@127.0.0.1:{free_port()}//", str(tmp_path))
    assert "broker unreachable at amqp://***@127.0.0.1" in str(stop.value) and "rabbitmq-server" in str(stop.value)
    assert not (tmp_path / "redis").exists(), "no Redis started for an AMQP broker"


def test_launcher_uses_a_rabbitmq_that_answers(rabbitmq_url, tmp_path):
    assert launcher.ensure_broker(rabbitmq_url, str(tmp_path)) == "running"


def test_results_go_to_the_panels_database_when_the_broker_keeps_none(tmp_path, monkeypatch):
    monkeypatch.setenv("PANEL_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    monkeypatch.delenv("CELERY_RESULT_BACKEND", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    backend = config.load_settings(tmp_path / "none.env")["CELERY_RESULT_BACKEND"]
    assert backend == f"db+sqlite:///{tmp_path / 'panel.db'}"
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:6379/3")
    assert config.load_settings(tmp_path / "none.env")["CELERY_RESULT_BACKEND"] == "redis://127.0.0.1:6379/3"


def _launch_run(folder, instance, broker_url):
    """`make run` (python -m panel.launcher) on a free loopback port over a shared instance folder."""
    port = free_port()
    env = dict(os.environ, PANEL_INSTANCE_PATH=str(instance), DATABASE_URL=f"sqlite:///{folder / 'panel.db'}",
               CELERY_BROKER_URL=broker_url, CELERY_RESULT_BACKEND=broker_url, PANEL_HOST="127.0.0.1",
               PANEL_PORT=str(port), WATCHDOG="", PANEL_AUTH="off", PYTHONUNBUFFERED="1")
    out = open(folder / f"run-{port}.out", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "panel.launcher", "run"], cwd=str(config.ROOT), env=env,
                            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    return proc, port


def test_make_run_keeps_its_background_lock_so_a_second_panel_stands_by(tmp_path, redis_server):
    instance = tmp_path / "instance"
    first, _ = _launch_run(tmp_path, instance, redis_server.url)
    second = None
    try:
        wait_for(lambda: background.actor_pid(instance) == first.pid, 90, "the first panel to act")
        second, port = _launch_run(tmp_path, instance, redis_server.url)
        wait_for(lambda: _serves(port), 90, "the second panel to serve")
        assert background.actor_pid(instance) == first.pid  # the first still holds the lock: one actor
        end_process(first)
        wait_for(lambda: background.actor_pid(instance) == second.pid, background.STANDBY_S * 10,
                 "the second panel to take over")
    finally:
        end_process(first)
        if second is not None:
            end_process(second)


def _serves(port):
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False
