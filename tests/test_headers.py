"""What every answer says about caching and about the server: `Cache-Control: no-store` on pages, exports and JSON
(static files keep theirs), and a `Server` header without a version, from the servers `make run` and `make serve`
really start."""
import os
import re
import subprocess
import sys

import pytest
import requests

from panel.config import ROOT
from tests.gunicorn_stack import GunicornPanel
from tests.helpers import api_client, end_process, form_login, free_port, make_user, wait_for

BOOT_WAIT_S = 90  # migrations and the app's import, on two shared cores
PATHS = ("/healthz", "/login", "/no-such-page", "/api/no-such-route", "/static/panel.css")


def test_pages_exports_and_json_answers_are_never_stored(app):
    make_user(app, "ops", "operator")
    browser = app.test_client()
    assert browser.get("/login").headers.get("Cache-Control") == "no-store"
    form_login(browser, "ops")
    api = api_client(app, "viewer")
    answers = {"page": browser.get("/runs"), "dashboard": browser.get("/"), "api": api.get("/api/me"),
               "csv export": api.get("/api/runs/export?format=csv"),
               "json export": api.get("/api/runs/export?format=json"),
               "api error": api.get("/api/runs/no-such-run"), "redirect": app.test_client().get("/runs")}
    for what, resp in answers.items():
        assert resp.headers.get("Cache-Control") == "no-store", f"{what}: {resp.status_code} {resp.headers}"
    static = browser.get("/static/panel.css")
    assert static.status_code == 200 and "no-store" not in static.headers.get("Cache-Control", "")


def _versionless(base):
    """Every kind of answer names the server without a version (no digit at all)."""
    for path in PATHS:
        resp = requests.get(base + path, timeout=30)
        server = resp.headers.get("Server", "")
        assert server and not re.search(r"\d", server) and "Python" not in server, f"{path}: Server: {server}"
        assert len(resp.raw.headers.getlist("Server")) == 1, f"{path}: one Server header, not two"


@pytest.mark.timeout(300)
def test_make_run_serves_no_version_in_the_server_header(tmp_path, redis_server):
    """`make run` is `python -m panel.launcher run`: Flask's own server, started here on a free loopback port."""
    port = free_port()
    env = dict(os.environ, PANEL_INSTANCE_PATH=str(tmp_path / "instance"), PANEL_HOST="127.0.0.1",
               PANEL_PORT=str(port), DATABASE_URL=f"sqlite:///{tmp_path / 'panel.db'}",
               CELERY_BROKER_URL=redis_server.url, CELERY_RESULT_BACKEND=redis_server.url, WATCHDOG="",
               PYTHONUNBUFFERED="1")
    with open(tmp_path / "run.out", "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "panel.launcher", "run"], cwd=str(ROOT), env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(proc, base, tmp_path / "run.out"), BOOT_WAIT_S, "make run to serve /healthz")
        _versionless(base)
    finally:
        end_process(proc)


def _answers(proc, base, log):
    if proc.poll() is not None:
        raise AssertionError(f"the panel exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
    try:
        return requests.get(base + "/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.mark.timeout(300)
def test_make_serve_serves_no_version_in_the_server_header(tmp_path, redis_server):
    """`make serve` is gunicorn with gunicorn.conf.py: one worker is enough to read its headers."""
    panel = GunicornPanel(tmp_path, redis_server.url, workers=1)
    try:
        _versionless(panel.base)
    finally:
        panel.stop()
