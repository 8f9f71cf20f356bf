"""Test helpers: private services, bounded waits, small local servers, and what several test modules share (apps,
clients, pages, seed data, hand-started workers). Fixtures live in tests/conftest.py; a test module imports only
from here, never from conftest or another test module."""
import os
import re
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from app import create_app
from models import Run, Schedule, db, utcnow
from panel.config import ROOT, default_result_backend
from panel.host.processes import KINDS
from panel.runlog import recorder, runtime

WAIT_POLL_S = 0.1
FAULTS = []  # (fault injected, what happened), appended by the fault tests, printed by conftest


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def end_with_family(proc, wait_s):
    """SIGTERM a process this test started, SIGKILL it after wait_s, then SIGKILL what it left behind (by PID)."""
    import psutil
    if proc.poll() is not None:
        return
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    os.kill(proc.pid, signal.SIGCONT)  # a test may have left it stopped
    proc.terminate()
    try:
        proc.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)
    for child in family:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass


def wait_for(predicate, timeout_s, message="condition"):
    """Poll until predicate() is truthy; fail the test with `message` (or what it returns) after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            said = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout_s}s waiting for {said}")
        time.sleep(WAIT_POLL_S)


class RedisServer:
    """A private redis-server in a temp dir on a free loopback port; never the shared one."""

    def __init__(self, folder, port=None):
        binary = shutil.which("redis-server")
        if not binary:
            raise RuntimeError(
                "redis-server is not installed; the suite needs a real Redis (apt-get install redis-server)")
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
    """A run's row read in a fresh transaction, so polling never looks at a stale snapshot; what this process sent
    is written first (its sends are recorded by its writer thread, a moment later)."""
    from models import Run, db
    recorder.flush()
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
        end_with_family(self.proc, 15)


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


def executing_pid(celery, node, task_id, timeout_s=1.0):
    """The pool process executing task_id, from the worker's own `active` reply (Celery's inspect, not the panel)."""
    replies = celery.control.inspect(destination=[node], timeout=timeout_s).active() or {}
    return next((task.get("worker_pid") for task in replies.get(node) or [] if task.get("id") == task_id), None)


def process_gone(pid, create_time):
    """Whether the process (pid, create_time) has ended: no such pid, another process on it, or a zombie."""
    import psutil
    try:
        proc = psutil.Process(pid)
        return proc.create_time() != create_time or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def celery_main_pids(instance):
    """{"worker": [pid], "beat": [pid]}: this instance's main Celery processes, counted with psutil alone.

    Independent of the panel's scanner (panel/host/processes.py): a process is this instance's when its command
    line runs `celery ... worker|beat` and its PANEL_INSTANCE_PATH names the instance; a worker whose parent is
    one too is a pool child, not a worker.
    """
    import os
    from pathlib import Path

    import psutil
    instance, seen = str(Path(instance).resolve()), {}
    for proc in psutil.process_iter(["ppid", "cmdline", "status"]):
        argv = proc.info["cmdline"] or []
        kind = next((token for token in argv if token in ("worker", "beat")), None)
        if not kind or proc.info["status"] == psutil.STATUS_ZOMBIE or "celery" not in map(os.path.basename, argv):
            continue
        try:
            tag = proc.environ().get("PANEL_INSTANCE_PATH")
        except psutil.Error:
            continue
        if tag and str(Path(tag).resolve()) == instance:
            seen[proc.pid] = (kind, proc.info["ppid"])
    mains = {"worker": [], "beat": []}
    for pid, (kind, ppid) in sorted(seen.items()):
        if seen.get(ppid, (None,))[0] != kind:
            mains[kind].append(pid)
    return mains


def requests_so_far(page, seen, marker_path="/static/favicon.svg"):
    """`seen` (what a page.on("request") handler appended) once every request the page issued so far is in it.

    The page fetches a marker now and we wait for the marker's request event: Playwright reports a page's requests
    in the order they were issued, so a poll fired before (by page.clock.run_for) has been reported by then.
    """
    marker = f"{marker_path}?flush={time.monotonic_ns()}"
    with page.expect_request(lambda req: marker in req.url):
        page.evaluate("(url) => fetch(url).then((resp) => resp.status)", marker)
    return list(seen)


# ---- apps, clients and pages ---------------------------------------------------------------------------------------

TEST_PASSWORD = "correct horse battery"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).parent / "artifacts"  # screenshots of every page test (git-ignored)
UI_WAIT_MS = 30_000  # the longest a page may take to show an answer in Chromium, on two shared cores


def build_app(folder, db_url, broker_url, **extra):
    """An app on its own instance folder with a fresh schema."""
    config = {
        "INSTANCE_PATH": str(folder),
        "SQLALCHEMY_DATABASE_URI": db_url,
        "CELERY_BROKER_URL": broker_url,
        "CELERY_RESULT_BACKEND": default_result_backend(broker_url, db_url),
        "CELERY_IMPORTS": "tests.sample_tasks",
        "STOP_GRACE_S": 3.0,
        "START_TIMEOUT_S": 30.0,
        "TESTING": True,
        "API_CHECK_RESPONSES": True,  # every JSON answer in the suite is checked against its declared model
    }
    config.update(extra)
    app = create_app(config)
    with app.app_context():
        db.drop_all()
        db.create_all()
    return app


def stop_everything(app):
    """Finalizer: stop this instance's Celery processes, whatever the test left behind."""
    recorder.flush()  # the test's own sends are written to its database, not the next test's
    sup = app.extensions["supervisor"]
    sup.grace_s = 5.0
    sup.lock_wait_s = 120
    if sup.manager == "panel":  # a supervisord's programs are stopped with it, by the test that started it
        sup.stop(KINDS)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def make_user(app, name, role, password=TEST_PASSWORD):
    from panel.security import users
    with app.app_context():
        users.create(name, password, role)
        db.session.remove()


def api_client(app, role="admin"):
    """A test client that authenticates like curl: a real user of that role and a real Bearer token."""
    tokens = app.extensions.setdefault("test_tokens", {})
    if role not in tokens:
        from panel.security import users
        with app.app_context():
            users.create(f"test-{role}", TEST_PASSWORD, role)
            tokens[role] = users.create_token(f"test-{role}", "tests")[1]
            db.session.remove()
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {tokens[role]}"
    return client

def start_project_celery(app, wait_s):
    """Start Celery through the panel and wait until its worker is seen online with the project's task types."""
    assert api_client(app, "operator").post("/scheduler/start-celery/").get_json()["status"] == "success"
    node = app.extensions["supervisor"].nodename
    viewer = api_client(app, "viewer")
    wait_for(lambda: any(w["name"] == node and w["online"] for w in viewer.get("/api/workers").get_json()["workers"]),
             wait_s, "the project's worker to be seen online")
    wait_for(lambda: any(t["name"] == "proj.add" for t in viewer.get("/api/registered-tasks").get_json()["tasks"]),
             wait_s, "the project's task types, as its worker reports them")


def form_login(client, username, password=TEST_PASSWORD):
    """Log a test client in through the form; returns the answer and the CSRF token of the new session."""
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = client.post("/login", data={"username": username, "password": password, "csrf_token": token, "next": "/"})
    if resp.status_code == 302:  # the session is new after login, and so is its token
        token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").get_data(as_text=True)).group(1)
    return resp, token


def open_page(browser, width=1280, height=900):
    """A fresh browser context and page that accepts every dialog and remembers it (type, message)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.dialogs = []

    def on_dialog(dialog):
        page.dialogs.append((dialog.type, dialog.message))
        dialog.accept()
    page.on("dialog", on_dialog)
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    return context, page


def log_in(page, base, username, next_path="/", password=TEST_PASSWORD):
    """Log in through the login page as a person would; the panel then shows next_path."""
    page.goto(f"{base}/login?next={next_path}")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")


# ---- seed data and reads several test modules share ----------------------------------------------------------------

NOW = utcnow().replace(microsecond=0)  # the run-log tests' "now": the runs they add are placed around it
GOOD = {"name": "crawl home", "task": "crawl_url", "args": ["http://127.0.0.1:9/"], "kwargs": {"timeout": 3},
        "interval_seconds": 300}  # a schedule the API accepts


def count_tasks(app):
    with app.app_context():
        try:
            return db.session.query(Schedule).count()
        finally:
            db.session.remove()


def add_task(app, **data):
    """A schedule made through the service, as the API would make it; its id."""
    from panel.beat import schedules
    with app.app_context():
        task = schedules.create(data, set(app.extensions["celery"].tasks))
        task_id = task.id
        db.session.remove()
        return task_id


def rows(app, **filters):
    """Run rows read in a fresh transaction, so polling never looks at a stale snapshot (this process's sends
    written first)."""
    recorder.flush()
    with app.app_context():
        try:
            return db.session.query(Run).filter_by(**filters).order_by(Run.queued_at).all()
        finally:
            db.session.remove()


def add_runs(app, specs):
    """Insert runs: each spec is a dict of Run fields; returns their Celery ids in order."""
    ids = []
    with app.app_context():
        for spec in specs:
            row = {"celery_task_id": str(uuid.uuid4()), "task_name": "crawl_url", "state": "SUCCESS",
                   "status": "completed", "args": [], "kwargs": {}, "queued_at": NOW, **spec}
            row.setdefault("runtime_s", runtime.between(row.get("started_at"), row.get("finished_at")))  # as writers
            db.session.add(Run(**row))
            ids.append(row["celery_task_id"])
        db.session.commit()
        db.session.remove()
    return ids


def walk(client, query=""):
    """Every page of /api/runs for a query, following next_cursor; returns the runs in order."""
    seen, cursor = [], None
    for _ in range(1000):
        url = "/api/runs?" + query + (f"&cursor={cursor}" if cursor else "")
        body = client.get(url).get_json()
        seen += body["runs"]
        cursor = body["next_cursor"]
        if not cursor:
            return seen
    raise AssertionError("the cursor never ended")


# ---- Celery processes the tests start ------------------------------------------------------------------------------

CELERY = str(ROOT / ".venv" / "bin" / "celery")  # the suite's celery, for workers started by hand
PROJECT = Path(__file__).with_name("sample_project").resolve()  # the project tests/test_own_project*.py attach
WATCHDOG_FAST = {"WATCHDOG_INTERVAL_S": 0.3, "WATCHDOG_STABLE_S": 4.0, "WATCHDOG_BACKOFF_S": 0.5,
                 "WATCHDOG_BACKOFF_MAX_S": 4.0, "WATCHDOG_MAX_FAILURES": 3}
WORKER_READY_WAIT_S = 40
WORKER_EXIT_WAIT_S = 15


def start(app, *kinds):
    """Start the programs (all by default) through the supervisor; fail the test with their logs when one cannot."""
    results = app.extensions["supervisor"].start(kinds or KINDS)
    assert all(r.ok for r in results.values()), {k: (r.message, r.log_tail) for k, r in results.items()}
    return results


def dog(app, kind):
    """The watchdog's view of one program."""
    from panel.supervision import watchdog
    with app.app_context():
        return watchdog.view()[kind]


def project_call(app, task, args="[]"):
    """Send a task the way the attached project does, from its own folder with its own celery; its id."""
    env = app.extensions["supervisor"].child_env()
    out = subprocess.run([CELERY, "-A", "proj", "call", task, "--args", args], cwd=str(PROJECT), env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def ended(app, task_id, timeout_s=30):
    return wait_for(lambda: (r := run_row(app, task_id)) and r.status in ("completed", "failed") and r, timeout_s,
                    f"run {task_id} to end in the run log")


class Workers:
    """Worker processes a test started by hand; every one is stopped by PID, whatever the tests did."""

    def __init__(self, app, folder):
        self.app, self.folder, self.procs = app, folder, {}

    def start(self, short, *extra, config=()):
        from celery.utils.nodenames import host_format
        name = host_format(f"{short}@%h")
        argv = [CELERY, "-A", "celery_app", "worker", "-n", name, "-c", "2", "-l", "info", "-Q", "celery",
                "--without-mingle", "--without-gossip", *extra]
        if config:
            argv += ["--", *config]  # worker settings from the command line (Celery's cmdline config)
        log = open(self.folder / f"{short}.log", "ab")
        proc = subprocess.Popen(argv, cwd=str(ROOT), env=self.app.extensions["supervisor"].child_env(),
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs[name] = proc
        wait_for(lambda: proc.poll() is not None or listed_online(self.app, name), WORKER_READY_WAIT_S,
                 f"{name} online")
        assert proc.poll() is None, (self.folder / f"{short}.log").read_text()[-3000:]
        return name, proc

    def stop_all(self):
        for proc in self.procs.values():
            stop_tree(proc)


def stop_tree(proc):
    """TERM the worker (and CONT, in case a test left it stopped), KILL what is left of its tree."""
    import psutil
    if proc.poll() is not None:
        return
    try:
        members = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        members = [proc.pid]
    for sig in (signal.SIGCONT, signal.SIGTERM):
        os.kill(proc.pid, sig)
    try:
        proc.wait(timeout=WORKER_EXIT_WAIT_S)
    except subprocess.TimeoutExpired:
        pass
    for pid in members:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=WORKER_EXIT_WAIT_S)


def listed_online(app, name):
    body = api_client(app, "viewer").get("/api/workers").get_json()
    return any(w["name"] == name and w["status"] == "online" for w in body["workers"])
