"""Test helpers: private services, bounded waits, small local servers."""
import select
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WAIT_POLL_S = 0.1
FAULTS = []  # (fault injected, what happened), appended by the fault tests, printed by conftest


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout_s, message="condition"):
    """Poll until predicate() is truthy; fail the test with `message` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {message}")
        time.sleep(WAIT_POLL_S)


class RedisServer:
    """A private redis-server in a temp dir on a free loopback port; never the shared one."""

    def __init__(self, folder, port=None):
        binary = shutil.which("redis-server")
        if not binary:
            raise RuntimeError("redis-server is not installed; the suite needs a real Redis (apt-get install redis-server)")
        self.port = port or free_port()  # a port again: the same server "comes back" (fault tests)
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(folder), "--logfile", str(folder / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        wait_for(self._answers, 10, "private redis-server to answer")

    def _answers(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *_):
        pass

    def _client_hung_up(self, until, limit_s=300):
        """Wait until `until` is set or the client closes its end; True when it closed (a read gives EOF)."""
        deadline = time.monotonic() + limit_s
        while not until.is_set() and time.monotonic() < deadline:
            ready, _, _ = select.select([self.connection], [], [], 0.05)
            if ready and self.connection.recv(1, socket.MSG_PEEK) == b"":
                return True
        return False

    def do_GET(self):
        server = self.server
        server.hits.append(self.path)
        if self.path.startswith("/slow"):
            server.slow_started.set()
            if self._client_hung_up(until=server.release):
                server.slow_closed.set()  # the crawl's socket was closed by its end: proof it stopped
                return
        code = 500 if self.path.startswith("/500") else 200
        body = f"<html><head><title>Page {self.path}</title></head><body>ok</body></html>".encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class LocalSite:
    """A small HTTP server on loopback for crawl tests: /ok, /500 and /slow."""

    def __init__(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.hits = []
        self.server.slow_started = threading.Event()
        self.server.slow_closed = threading.Event()
        self.server.release = threading.Event()
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def hits(self):
        return self.server.hits

    def stop(self):
        self.server.release.set()
        self.server.shutdown()
        self.server.server_close()


def run_row(app, celery_task_id):
    """A run's row read in a fresh transaction, so polling never looks at a stale snapshot."""
    from models import Run, db
    with app.app_context():
        try:
            return db.session.query(Run).filter_by(celery_task_id=celery_task_id).one_or_none()
        finally:
            db.session.remove()


def start_worker(app):
    """Start this app's worker through the supervisor; fail the test with its log when it cannot."""
    from panel.host.processes import WORKER
    result = app.extensions["supervisor"].start((WORKER,))[WORKER]
    assert result.ok, result.log_tail
    return result.pids[0]


class TcpProxy:
    """A loopback TCP forwarder we can cut and restore: a database "unreachable for a while"."""

    def __init__(self, target_port, port=None):
        self.target = ("127.0.0.1", target_port)
        self.port = port or free_port()
        self.conns = []
        self.lock = threading.Lock()
        self.server = None
        self.start()

    def start(self):
        self.server = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self.server.settimeout(0.2)
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        server = self.server
        while self.running and server is self.server:  # a cut closes this server: its thread ends
            try:
                client, _ = server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        """Refuse new connections and break the open ones."""
        self.running = False
        self.server.close()
        with self.lock:
            for conn in self.conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                    conn.close()
                except OSError:
                    pass
            self.conns = []

    def restore(self):
        self.start()


class OtherHostWorker:
    """A worker standing for another host's: its own node name and instance, so never this panel's to stop.

    It records its runs in the same run log and takes the same broker; stop() ends it by PID, whatever happened.
    """

    READY_WAIT_S = 40

    def __init__(self, app, folder, node="w2@elsewhere", queues="celery"):
        from panel.broker import remote
        from panel.config import ROOT
        self.node, self.log_path = node, folder / f"{node.split('@')[0]}.log"
        env = dict(app.extensions["supervisor"].child_env(), PANEL_INSTANCE_PATH=str(folder / "elsewhere"))
        argv = [str(ROOT / ".venv" / "bin" / "celery"), "-A", "celery_app", "worker", "-n", node, "-c", "2",
                "-Q", queues, "-l", "info", "--without-mingle", "--without-gossip"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, cwd=str(ROOT), env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        celery = app.extensions["celery"]
        wait_for(lambda: self.proc.poll() is not None or remote.ping_worker(celery, node, timeout_s=0.5),
                 self.READY_WAIT_S, f"{node} to answer")
        assert self.proc.poll() is None, self.log_path.read_text()[-3000:]

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        import psutil
        if self.proc.poll() is not None:
            return
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)
        for child in children:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass


def tool(app, *args, env=None, timeout=60):
    """Run one of scripts/ as a person would, with the panel's settings in the environment."""
    import sys

    from panel.config import ROOT
    env = env if env is not None else app.extensions["supervisor"].child_env()
    return subprocess.run([sys.executable, str(ROOT / "scripts" / args[0]), *args[1:]], cwd=str(ROOT), env=env,
                          capture_output=True, text=True, timeout=timeout)


class SqliteLock:
    """A real fault: another connection holds an EXCLUSIVE lock on the app's SQLite file until released (or
    `hold_s` at most). `with SqliteLock(app, 30) as lock:` returns once the lock is taken; `lock.held()` says
    whether it still is, so a test proves its writes met it."""

    def __init__(self, app, hold_s):
        self.path = app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
        self.hold_s, self.locked, self.release = hold_s, threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self):
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        self.locked.set()
        self.release.wait(self.hold_s)
        conn.execute("COMMIT")
        conn.close()

    def held(self):
        return self.thread.is_alive()

    def wait_out(self):
        """Let the lock run its full time, as a stuck writer elsewhere would."""
        self.thread.join(self.hold_s + 5)

    def __enter__(self):
        self.thread.start()
        assert self.locked.wait(5), "the lock was never taken"
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.thread.join(10)


def end_process(proc, timeout_s=15):
    """Finalizer for a process a test started itself: TERM, then KILL if it will not go."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)
