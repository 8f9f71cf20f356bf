"""The gunicorn worker and logger of `make serve` (panel/web/server.py): the access log says what gunicorn's own would,
in order, to the end, and a worker with two threads answers every kept-alive client."""
import base64
import re
import types
from datetime import timedelta

import pytest
import requests
from gunicorn.config import Config
from gunicorn.glogging import Logger

from panel.web import server
from tests.gunicorn_stack import GunicornPanel


def _request(path, status="200 OK", n=0):
    """A request as gunicorn hands it to its logger; every few, one with a quote, a Basic user, no length, no agent."""
    agent = 'curl/8 "quoted"' if n % 5 == 1 else "curl/8"
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": path, "PATH_INFO": path, "QUERY_STRING": "",
               "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "HTTP_USER_AGENT": agent,
               "HTTP_REFERER": "http://127.0.0.1:5000/"}
    if n % 5 == 2:
        environ["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(b"ada:secret").decode()
    if n % 5 == 3:
        del environ["HTTP_USER_AGENT"], environ["HTTP_REFERER"]
    req = types.SimpleNamespace(headers=[("USER-AGENT", agent), ("X-TRACE", path)])
    sent = None if n % 5 == 4 else 0 if n % 5 == 3 else len(path)
    resp = types.SimpleNamespace(status=status, sent=sent, headers=[("Content-Type", "application/json")])
    return resp, req, environ, timedelta(microseconds=1234)


@pytest.mark.parametrize("line_format", [None, '%(h)s "%(r)s" %(s)s %(b)s %(D)s %({x-trace}i)s %({content-type}o)s'],
                         ids=["default-format", "custom-format"])
def test_access_lines_are_gunicorns_own_in_order_and_written_before_the_worker_exits(tmp_path, monkeypatch,
                                                                                     line_format):
    paths = [f"/api/runs/{n}" for n in range(200)]
    written = {}
    for name, logger_class in (("gunicorn", Logger), ("panel", server.AccessLog)):
        cfg = Config()
        cfg.set("accesslog", str(tmp_path / f"{name}.log"))
        if line_format:
            cfg.set("access_log_format", line_format)
        monkeypatch.setattr(logger_class, "now", lambda self: "[05/Dec/2026:21:00:00 +0000]")
        log = logger_class(cfg)
        for n, path in enumerate(paths):
            log.access(*_request(path, "404 NOT FOUND" if path.endswith("7") else "200 OK", n))
        if isinstance(log, server.AccessLog):
            log.write_pending()
        written[name] = (tmp_path / f"{name}.log").read_text()
    assert written["panel"] == written["gunicorn"] and len(written["panel"].splitlines()) == len(paths)
    assert re.search(r'"GET /api/runs/17 HTTP/1.1" 404', written["panel"])


@pytest.mark.timeout(300)
def test_one_worker_with_two_threads_answers_every_request_of_three_kept_alive_clients(tmp_path, redis_server):
    """Three kept-alive clients on two threads: every request answered, every line written by the worker's exit."""
    log = tmp_path / "access.log"
    panel = GunicornPanel(tmp_path, redis_server.url, workers=1, PANEL_THREADS=2, PANEL_ACCESS_LOG=str(log))
    try:
        clients = [requests.Session() for _ in range(3)]
        for round_ in range(30):
            for n, http in enumerate(clients):
                assert http.get(panel.url(f"/healthz?client={n}&round={round_}"), timeout=30).status_code == 200
    finally:
        panel.stop()
    lines = [line for line in log.read_text().splitlines() if "/healthz?client=" in line]
    assert len(lines) == 90, "every answer has its line, written by the time the worker stopped"
    assert [re.search(r"client=(\d)&round=(\d+)", line).groups() for line in lines] == [
        (str(n), str(r)) for r in range(30) for n in range(3)], "in the order they were answered"
