"""Pure logic: which command lines are this app's worker or Beat (decoys included)."""
import pytest

from panel.host.processes import classify

PY = "/work/main/.venv/bin/python"
CELERY = "/work/main/.venv/bin/celery"


@pytest.mark.parametrize("argv, kind", [
    ([CELERY, "-A", "celery_app", "worker", "--loglevel", "info"], "worker"),
    ([PY, CELERY, "-A", "celery_app", "beat"], "beat"),
    ([PY, "-m", "celery", "--app=celery_app", "worker", "-c", "2"], "worker"),
    (["celery", "-Acelery_app", "beat"], "beat"),
    (["celery", "--broker", "redis://x", "-A", "celery_app", "worker"], "worker"),
])
def test_classify_finds_worker_and_beat_command_lines(argv, kind):
    assert classify(argv) == kind


@pytest.mark.parametrize("argv", [
    ["bash", "-c", "celery -A celery_app worker"],
    ["vim", "celery_app.py"],
    ["tail", "-f", "instance/logs/worker.log"],
    ["grep", "celery", "-A", "celery_app", "worker"],
    ["pgrep", "-f", "celery -A celery_app beat"],
    ["celery", "-A", "other_app", "worker"],
    ["celery", "-A", "celery_app", "inspect", "active"],
    ["celery", "-A", "celery_app", "flower", "worker"],
    [PY, "worker.py", "beat"],
    [PY, "-c", "import celery; celery -A celery_app worker"],
    ["celery -A celery_app worker"],
    ["flask", "--app", "app", "run"],
    [],
])
def test_classify_ignores_decoys(argv):
    assert classify(argv) is None
