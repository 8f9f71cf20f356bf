"""Typed settings (panel/config.py): types, defaults, precedence, and a bad value named at start-up. Pure: no Redis."""
import subprocess
import sys

import pytest

from panel import config
from panel.errors import SettingsError


@pytest.fixture(autouse=True)
def clean_env(tmp_path, monkeypatch):
    """No setting from the machine running the tests; the instance folder under tmp_path."""
    for key in config.Settings.model_fields:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PANEL_INSTANCE_PATH", str(tmp_path / "inst"))


def load(tmp_path, dotenv=""):
    env_file = tmp_path / "test.env"
    env_file.write_text(dotenv)
    return config.load_settings(env_file)


def test_the_defaults_have_the_types_the_app_reads(tmp_path):
    settings = load(tmp_path)
    assert settings["PANEL_PORT"] == 5000 and type(settings["PANEL_PORT"]) is int
    assert settings["MAX_CONTENT_LENGTH"] == 1024 * 1024 and type(settings["WORKER_CONCURRENCY"]) is int
    seconds = [key for key in settings if key.endswith("_S")]
    assert seconds and {key: type(settings[key]) for key in seconds} == {key: float for key in seconds}
    assert settings["RECORD_RUNS"] is True and settings["PANEL_SECURE_COOKIES"] is False
    assert settings["PANEL_HOST"] == "127.0.0.1" and settings["RUN_EVENTS"] == "auto" and settings["CELERY_APP"] == ""
    assert settings["INSTANCE_PATH"] == str(tmp_path / "inst")
    assert settings["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'inst' / 'panel.db'}"
    assert settings["CELERY_RESULT_BACKEND"] == settings["CELERY_BROKER_URL"] == "redis://127.0.0.1:6379/0"
    assert len(settings["SECRET_KEY"]) == 64
    assert (tmp_path / "inst" / "secret_key").read_text() == settings["SECRET_KEY"]
    # Read to derive the values above, or by gunicorn.conf.py only: not Flask config keys.
    assert not {"PANEL_INSTANCE_PATH", "DATABASE_URL", "BROKER_URL", "PANEL_WORKERS", "PANEL_THREADS"} & set(settings)


def test_a_bad_integer_names_its_key_and_what_it_wants(tmp_path, monkeypatch):
    monkeypatch.setenv("PANEL_PORT", "abc")
    with pytest.raises(SettingsError) as bad:
        load(tmp_path)
    assert str(bad.value) == "PANEL_PORT: expected an integer, got 'abc'"
    assert bad.value.problems == [("PANEL_PORT", "expected an integer, got 'abc'")]


def test_a_bad_number_of_seconds_names_its_key(tmp_path):
    with pytest.raises(SettingsError, match=r"^STOP_GRACE_S: expected a number of seconds, got 'ten'$"):
        load(tmp_path, "STOP_GRACE_S=ten\n")


def test_every_bad_value_is_named_at_once_and_an_empty_number_is_bad(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKER_CONCURRENCY", "2.5")
    with pytest.raises(SettingsError) as bad:
        load(tmp_path, "BULK_MAX_RUNS=\nLOGIN_WINDOW_S=15m\n")
    assert sorted(key for key, _ in bad.value.problems) == ["BULK_MAX_RUNS", "LOGIN_WINDOW_S", "WORKER_CONCURRENCY"]


def test_numbers_are_read_as_int_and_float_read_them(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKER_POOL_MAX", " 1_000 ")
    settings = load(tmp_path, "PANEL_PORT=+8080\nSTOP_GRACE_S=2.5\nSTART_TIMEOUT_S=1e2\n")
    assert settings["WORKER_POOL_MAX"] == 1000 and settings["PANEL_PORT"] == 8080
    assert settings["STOP_GRACE_S"] == 2.5 and settings["START_TIMEOUT_S"] == 100.0


def test_env_file_is_read_and_the_environment_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKER_CONCURRENCY", "4")
    settings = load(tmp_path, "WORKER_CONCURRENCY=7\nSTOP_GRACE_S=3\nWORKER_POOL='solo'\nNOT_A_SETTING=1\n")
    assert settings["WORKER_CONCURRENCY"] == 4 and settings["STOP_GRACE_S"] == 3.0 and settings["WORKER_POOL"] == "solo"
    assert "NOT_A_SETTING" not in settings


def test_keys_are_case_sensitive_as_in_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("panel_port", "7000")
    assert load(tmp_path, "worker_concurrency=9\n")["PANEL_PORT"] == 5000


@pytest.mark.parametrize("dotenv, env, broker", [
    ("BROKER_URL=redis://from-file:6379/1\n", {}, "redis://from-file:6379/1"),
    ("", {"BROKER_URL": "redis://from-env:6379/2"}, "redis://from-env:6379/2"),
    # CELERY_BROKER_URL set anywhere wins over BROKER_URL anywhere
    ("CELERY_BROKER_URL=redis://celery-file:6379/3\n", {"BROKER_URL": "redis://from-env:6379/2"},
     "redis://celery-file:6379/3"),
    ("BROKER_URL=redis://from-file:6379/1\n", {"CELERY_BROKER_URL": "amqp://g:g@h//"}, "amqp://g:g@h//"),
    # an empty BROKER_URL is no fallback
    ("BROKER_URL=\n", {}, "redis://127.0.0.1:6379/0"),
])
def test_broker_url_stands_in_for_celery_broker_url(tmp_path, monkeypatch, dotenv, env, broker):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load(tmp_path, dotenv)
    assert settings["CELERY_BROKER_URL"] == broker and "BROKER_URL" not in settings


def test_the_result_backend_is_the_database_on_a_broker_that_keeps_no_results(tmp_path, monkeypatch):
    monkeypatch.setenv("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u@db/panel")
    settings = load(tmp_path, "CELERY_RESULT_BACKEND=\n")  # empty: derived
    assert settings["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@db/panel"
    assert settings["CELERY_RESULT_BACKEND"] == "db+postgresql+psycopg://u@db/panel"


@pytest.mark.parametrize("word, on", [("1", True), ("true", True), ("Yes", True), ("ON", True),
                                      ("0", False), ("false", False), ("No", False), ("off", False)])
def test_flags_read_the_usual_words_in_any_case(tmp_path, monkeypatch, word, on):
    monkeypatch.setenv("RECORD_RUNS", word)
    monkeypatch.setenv("PANEL_SECURE_COOKIES", word)
    settings = load(tmp_path)
    assert settings["RECORD_RUNS"] is on and settings["PANEL_SECURE_COOKIES"] is on


def test_an_empty_flag_means_its_default_and_a_stray_word_is_refused(tmp_path, monkeypatch):
    settings = load(tmp_path, "RECORD_RUNS=\nPANEL_SECURE_COOKIES=\n")
    assert settings["RECORD_RUNS"] is True and settings["PANEL_SECURE_COOKIES"] is False
    monkeypatch.setenv("PANEL_SECURE_COOKIES", "ture")
    with pytest.raises(SettingsError, match=r"^PANEL_SECURE_COOKIES: expected one of 1/0, true/false, yes/no, on/off"):
        load(tmp_path)


def test_the_worker_reads_back_what_the_panel_passes_it(tmp_path, monkeypatch):
    """The supervisor hands settings to the worker and Beat as str(value): "False", "2.0", "0" must read back."""
    panel = load(tmp_path, "RECORD_RUNS=off\n")
    passed = ("RECORD_RUNS", "BEAT_MAX_INTERVAL_S", "WORKER_MAX_TASKS_PER_CHILD", "WORKER_CONCURRENCY")
    for key in passed:
        monkeypatch.setenv(key, str(panel[key]))
    worker = load(tmp_path)
    assert {key: worker[key] for key in passed} == {key: panel[key] for key in passed}


def test_the_launcher_says_which_setting_is_bad_and_exits_without_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("PANEL_PORT", "abc")
    out = subprocess.run([sys.executable, "-m", "panel.launcher", "run"], cwd=str(config.ROOT),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "PANEL_PORT: expected an integer, got 'abc'" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "inst").exists(), "refused before anything was created"
