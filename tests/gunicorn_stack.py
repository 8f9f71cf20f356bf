"""The panel served by a real gunicorn (`python -m panel.launcher serve`), and the status-polling load against it.

Shared by tests/test_gunicorn.py and bench/status_load.py. Everything started here is stopped by PID.
"""
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from itertools import cycle

import psutil
import requests

from app import create_app
from models import db
from panel.config import ROOT
from panel.host import processes
from panel.host.processes import BEAT, WORKER
from tests import pollers as pollers_
from tests.helpers import api_client, celery_main_pids, free_port, stop_everything, wait_for

BOOT_WAIT_S = 90  # prepare (migrations) and the workers importing the app, on two shared cores
TERM_WAIT_S = 40  # gunicorn's graceful_timeout with the test's STOP_GRACE_S, plus a margin
KILL_WAIT_S = 10
HTTP_TIMEOUT_S = 30
CONTROL_TIMEOUT_S = 150  # a control request may wait for the lock, stop and start
SAMPLE_EVERY_S = 0.05
POLLER_PROCESSES = 10  # the pollers are spread over this many processes (one GIL each)
POLL_PATHS = ("/celery_status", "/scheduler/celery-status/")
CONTROLS = ("/scheduler/start-celery/", "/restart_celery_beat", "/scheduler/stop-celery/")


class GunicornPanel:
    """`launcher serve` on a free loopback port, on its own instance, database and broker; stop() ends it all."""

    command = "serve"  # `launcher serve` execs gunicorn: this pid becomes gunicorn's master

    def __init__(self, folder, broker_url, workers=None, imports="tests.sample_tasks", **settings):
        """`workers`: PANEL_WORKERS, or None for the shipped default (one per CPU)."""
        self.folder = folder
        self.instance = str(folder / "instance")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ, PANEL_INSTANCE_PATH=self.instance, DATABASE_URL=f"sqlite:///{folder / 'panel.db'}",
                        CELERY_BROKER_URL=broker_url, CELERY_RESULT_BACKEND=broker_url, CELERY_IMPORTS=imports,
                        PANEL_HOST="127.0.0.1", PANEL_PORT=str(self.port),
                        WATCHDOG="", STOP_GRACE_S="3", PYTHONUNBUFFERED="1")
        if workers is not None:
            settings["PANEL_WORKERS"] = workers
        else:
            self.env.pop("PANEL_WORKERS", None)
        self.env.update({key: str(value) for key, value in settings.items()})
        self.log_path = folder / f"{self.command}.out"
        self.app = None
        self.tokens = {}
        with open(self.log_path, "ab") as out:
            self.master = subprocess.Popen([sys.executable, "-m", "panel.launcher", self.command], cwd=str(ROOT),
                                           env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(self._booted, BOOT_WAIT_S, f"the panel ({self.command}) to serve /healthz (see {self.log_path})")
            self.app = self.local_app()
        except BaseException:
            self.stop()
            raise

    def _booted(self):
        if self.master.poll() is not None:
            raise AssertionError(f"the panel ({self.command}) exited with {self.master.returncode}:\n{self.output()}")
        try:
            return requests.get(self.base + "/healthz", timeout=2).status_code == 200 and self._serving()
        except requests.RequestException:
            return False

    def _serving(self):
        """gunicorn answers from its master before a worker is up: ready once one is."""
        return len(self.worker_pids()) > 0

    def local_app(self):
        """An app in this process on the same settings: users, tokens, and the supervisor for the clean-up."""
        config = {"INSTANCE_PATH": self.instance, "SQLALCHEMY_DATABASE_URI": self.env["DATABASE_URL"],
                  "CELERY_BROKER_URL": self.env["CELERY_BROKER_URL"],
                  "CELERY_RESULT_BACKEND": self.env["CELERY_RESULT_BACKEND"],
                  "CELERY_IMPORTS": self.env["CELERY_IMPORTS"], "STOP_GRACE_S": 3.0, "TESTING": True}
        return create_app(config)

    def output(self):
        return self.log_path.read_text(errors="replace")[-4000:]

    def url(self, path):
        return self.base + path

    def session(self, role):
        """An HTTP session that authenticates like curl, with a real user of that role and a Bearer token."""
        if role not in self.tokens:
            api_client(self.app, role)
            self.tokens[role] = self.app.extensions["test_tokens"][role]
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {self.tokens[role]}"
        return http

    def _workers(self):
        """gunicorn's worker processes: the master's children (Celery started by a worker is a grandchild)."""
        try:
            return psutil.Process(self.master.pid).children()
        except psutil.NoSuchProcess:
            return []

    def worker_pids(self):
        return sorted(p.pid for p in self._workers())

    def stop(self):
        """Stop the Celery this instance runs, then gunicorn: TERM the master, KILL after a bound."""
        try:
            self._stop_celery()
        finally:
            self._stop_gunicorn()
            if any(processes.scan(self.instance).values()):
                self._stop_celery()  # a control request that landed during shutdown started something

    def _stop_celery(self):
        """Through the app's supervisor; what it leaves, or everything when it fails, is killed by PID."""
        try:
            if self.app is not None:
                stop_everything(self.app)
        finally:
            for ref in [r for refs in processes.scan(self.instance).values() for r in refs]:
                for pid in (ref.pid, *ref.children):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass

    def _stop_gunicorn(self):
        workers = self._workers()
        if self.master.poll() is None:
            self.master.send_signal(signal.SIGTERM)
            try:
                self.master.wait(timeout=TERM_WAIT_S)
            except subprocess.TimeoutExpired:
                self.master.kill()
                self.master.wait(timeout=KILL_WAIT_S)
        _, alive = psutil.wait_procs(workers, timeout=KILL_WAIT_S)
        for proc in alive:  # orphans of a killed master: ours, started through it
            proc.kill()
        psutil.wait_procs(alive, timeout=KILL_WAIT_S)


@dataclass
class LoadResult:
    """What the pollers, the control thread and the table sampler saw."""

    seconds: float = 0.0
    latencies_ms: dict = field(default_factory=dict)  # path -> [ms]
    codes: dict = field(default_factory=dict)  # path -> Counter of status codes (0: no answer)
    controls: list = field(default_factory=list)  # (path, status code, seconds)
    most: Counter = field(default_factory=Counter)  # kind -> the most main processes seen at once
    most_by_psutil: Counter = field(default_factory=Counter)  # the same, counted with psutil alone (not the scanner)
    samples: int = 0

    def polls(self):
        return sum(sum(c.values()) for c in self.codes.values())

    def server_errors(self):
        return sum(n for c in self.codes.values() for code, n in c.items() if code >= 500 or code == 0)


def _timed_status(method, url, timeout_s):
    """(status code, seconds) of one request; code 0 when no answer came."""
    started = time.perf_counter()
    try:
        code = method(url, timeout=timeout_s).status_code
    except requests.RequestException:
        code = 0
    return code, time.perf_counter() - started


def _controller(panel, stop, cycled, result):
    http = panel.session("operator")
    for path in cycle(CONTROLS):
        if stop.is_set():
            return
        code, seconds = _timed_status(http.post, panel.url(path), CONTROL_TIMEOUT_S)
        result.controls.append((path, code, seconds))
        if len(result.controls) >= len(CONTROLS):
            cycled.set()


def _sampler(instance, stop, ready, out):
    """In a process of its own: in the pollers' company fifty busy threads would starve it of the GIL."""
    result = LoadResult()
    ready.put("sampler")
    while not stop.wait(SAMPLE_EVERY_S):
        table, counted = processes.scan(instance), celery_main_pids(instance)
        result.samples += 1
        for kind in (WORKER, BEAT):
            result.most[kind] = max(result.most[kind], len(table[kind]))
            result.most_by_psutil[kind] = max(result.most_by_psutil[kind], len(counted[kind]))
    out.put((result.most, result.most_by_psutil, result.samples))


def _ended(children, timeout_s=KILL_WAIT_S):
    """Join each process; one that does not end is killed by its PID."""
    for child in children:
        child.join(timeout=timeout_s)
        if child.is_alive():
            child.kill()
            child.join(timeout=timeout_s)


def _sampled(sampler, sampling, out, result):
    """Stop the sampler process and take its figures."""
    sampling.set()
    try:
        result.most, result.most_by_psutil, result.samples = out.get(timeout=HTTP_TIMEOUT_S)
    finally:
        _ended([sampler])


def _polled(children, out, result):
    """Every poller process's figures, merged."""
    try:
        for _ in children:
            latencies, codes = out.get(timeout=HTTP_TIMEOUT_S + 10)
            for path, values in latencies.items():
                result.latencies_ms.setdefault(path, []).extend(values)
                result.codes.setdefault(path, Counter()).update(codes[path])
    finally:
        _ended(children)


def _spawn(panel, pollers, paths):
    """The poller processes and the table sampler, spawned and ready (or ended, and the failure raised).

    Spawned, not forked: a fork of this process (many threads in a test session) can inherit a lock another thread
    held, and hang; a fresh interpreter cannot. The clock starts only once every one of them is ready.
    """
    spawned = multiprocessing.get_context("spawn")
    events = {name: spawned.Event() for name in ("go", "polling", "sampling")}
    queues = {name: spawned.Queue() for name in ("ready", "polled", "sampled")}
    orders = [list(paths[i % len(paths):] + paths[:i % len(paths)]) for i in range(pollers)]
    address, token = ("127.0.0.1", panel.port), panel.tokens["viewer"]
    children = [spawned.Process(target=pollers_.poll, args=(address, token, orders[i::POLLER_PROCESSES], events["go"],
                                                            events["polling"], queues["ready"], queues["polled"]),
                                daemon=True) for i in range(min(pollers, POLLER_PROCESSES))]
    sampler = spawned.Process(target=_sampler, args=(panel.instance, events["sampling"], queues["ready"],
                                                     queues["sampled"]), daemon=True)
    try:
        for child in [sampler, *children]:
            child.start()
        for _ in range(len(children) + 1):
            queues["ready"].get(timeout=BOOT_WAIT_S)
    except BaseException:
        for event in events.values():
            event.set()
        _ended([sampler, *children])
        raise
    return children, sampler, events, queues


def run_load(panel, pollers, seconds, paths=POLL_PATHS, controls=True):
    """`pollers` clients GET `paths` in turn for `seconds` and, with `controls`, until each control ran once."""
    for role in ("viewer", "operator"):  # users and tokens made before the clock starts
        panel.session(role)
    result = LoadResult()
    controlling, cycled = threading.Event(), threading.Event()
    children, sampler, events, queues = _spawn(panel, pollers, paths)
    side = []
    if controls:
        side.append(threading.Thread(target=_controller, args=(panel, controlling, cycled, result), daemon=True))
    else:
        cycled.set()
    started = time.monotonic()
    events["go"].set()
    for thread in side:
        thread.start()
    time.sleep(seconds)
    # a start under fifty pollers on two cores can outlast the window: polls go on until every control answered
    cycled.wait(timeout=len(CONTROLS) * CONTROL_TIMEOUT_S)
    events["polling"].set()
    _polled(children, queues["polled"], result)
    result.seconds = time.monotonic() - started
    controlling.set()
    _sampled(sampler, events["sampling"], queues["sampled"], result)
    for thread in side:  # the control request in flight finishes: its answer counts too
        thread.join(timeout=CONTROL_TIMEOUT_S + 5)
    with panel.app.app_context():
        db.session.remove()
    return result
