"""A request body over MAX_CONTENT_LENGTH is refused with 413 however it is framed (Content-Length or chunked), on
the servers the panel ships: Werkzeug's (`make run`) and gunicorn (`make serve`), each a real process on loopback."""
import http.client
import json
import socket

import pytest
from kombu import Connection

from models import Run, db
from tests.gunicorn_stack import GunicornPanel
from tests.helpers import wait_for

LIMIT = 1024 * 1024  # MAX_CONTENT_LENGTH's default
SEND = "/api/registered-tasks/crawl_url/send"
# A valid request padded with spaces past the limit: cut at the limit it still reads, and the task would be sent.
PADDED = json.dumps({"args": ["http://127.0.0.1:9/"], "kwargs": {}}).encode() + b" " * (LIMIT + 256 * 1024)
SMALL = json.dumps({"args": ["http://127.0.0.1:9/"], "kwargs": {}}).encode()
CHUNK_BYTES = 16 * 1024
HTTP_TIMEOUT_S = 60


class DevServerPanel(GunicornPanel):
    """`python -m panel.launcher run` (make run: Werkzeug's threaded server, one process) on a free loopback port,
    with the settings, users and clean-up of GunicornPanel."""

    command = "run"

    def _serving(self):
        return True  # one process: /healthz answering is the server ready


@pytest.fixture(scope="module", params=["werkzeug", "gunicorn"])
def served(request, tmp_path_factory, redis_server):
    """The panel under each server, on the suite's private Redis; stopped (and all it started) by PID."""
    folder = tmp_path_factory.mktemp(request.param)
    panel = DevServerPanel(folder, redis_server.url) if request.param == "werkzeug" else \
        GunicornPanel(folder, redis_server.url, workers=1)
    yield panel
    panel.stop()


def post(panel, body, chunked):
    """POST the body to the send route, framed with a Content-Length or in chunks; (status, JSON answer)."""
    conn = http.client.HTTPConnection("127.0.0.1", panel.port, timeout=HTTP_TIMEOUT_S)
    try:
        conn.putrequest("POST", SEND)
        panel.session("operator")  # makes the user and its token
        conn.putheader("Authorization", f"Bearer {panel.tokens['operator']}")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Transfer-Encoding" if chunked else "Content-Length", "chunked" if chunked else str(len(body)))
        conn.endheaders()
        try:
            if chunked:
                for start in range(0, len(body), CHUNK_BYTES):
                    piece = body[start:start + CHUNK_BYTES]
                    conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                conn.send(b"0\r\n\r\n")
            else:
                conn.send(body)
        except (BrokenPipeError, ConnectionResetError):  # the server answered before reading it all: fine
            pass
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def queued(panel):
    """Messages waiting in the default queue, and run rows recorded (nothing sent: both none)."""
    with Connection(panel.env["CELERY_BROKER_URL"], connect_timeout=5) as conn:
        waiting = conn.default_channel.client.llen("celery")
    with panel.app.app_context():
        try:
            return waiting, db.session.query(Run).count()
        finally:
            db.session.remove()


def empty_queue(panel):
    with Connection(panel.env["CELERY_BROKER_URL"], connect_timeout=5) as conn:
        conn.default_channel.queue_purge("celery")


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_a_body_over_the_limit_is_413_and_nothing_is_sent(served, chunked):
    empty_queue(served)
    before = queued(served)
    status, answer = post(served, PADDED, chunked)
    assert status == 413 and answer["field"] == "body" and str(LIMIT) in answer["message"], (status, answer)
    assert queued(served) == before == (0, before[1])


def test_a_chunked_body_within_the_limit_is_read_whole_and_sent(served):
    empty_queue(served)
    status, answer = post(served, SMALL, chunked=True)
    assert status == 200 and answer["celery_task_id"], answer
    wait_for(lambda: queued(served)[0] == 1, 10, "the sent task to wait in the queue")
    empty_queue(served)



def test_a_broken_chunked_body_is_400_naming_the_body(served):
    served.session("operator")
    with socket.create_connection(("127.0.0.1", served.port), timeout=HTTP_TIMEOUT_S) as sock:
        sock.sendall(f"POST {SEND} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {served.tokens['operator']}\r\n"
                     "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
                     + b'5\r\n{"args": []}\r\n0\r\n\r\n')  # the chunk says 5 bytes and holds 12
        reply = http.client.HTTPResponse(sock)
        reply.begin()
        answer = json.loads(reply.read())
    assert reply.status == 400 and answer["field"] == "body", (reply.status, answer)
    assert queued(served)[0] == 0
