"""Local receivers for the alert tests: a webhook receiver (HTTP) and an SMTP inbox (aiosmtpd), loopback only."""
import email
import email.policy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from tests.helpers import free_port

HANG_RELEASE_S = 30  # a hung handler lets go at the latest then, or when its server stops


class _Hook(BaseHTTPRequestHandler):
    """POST /ok answers 204, /fail answers 500, /hang never answers; every body is kept."""

    def log_message(self, *_):
        pass

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.posts.append((self.path, json.loads(raw), self.headers.get("Content-Type")))
        if self.path == "/hang":
            self.server.release.wait(timeout=HANG_RELEASE_S)
            return
        self.send_response(500 if self.path == "/fail" else 204)
        self.send_header("Content-Length", "0")
        self.end_headers()


class Receiver:
    """A webhook receiver on loopback."""

    def __init__(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
        self.server.daemon_threads = True
        self.server.posts, self.server.release = [], threading.Event()
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self, path):
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    @property
    def posts(self):
        return self.server.posts

    def stop(self):
        self.server.release.set()
        self.server.shutdown()
        self.server.server_close()


class Inbox:
    """aiosmtpd's handler: keeps every message it accepts."""

    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 OK"

    @property
    def messages(self):
        return [email.message_from_bytes(e.content, policy=email.policy.default) for e in self.envelopes]


def smtp_server(**kwargs):
    """An aiosmtpd server on a free loopback port; the caller stops inbox.controller."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    inbox.port, inbox.controller = controller.port, controller
    return inbox
