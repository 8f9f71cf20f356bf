"""Start, stop and restart this host's Celery worker and Beat, one control action at a time."""
import fcntl
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from celery.utils.nodenames import host_format

from panel.config import ROOT
from panel.errors import ControlBusy
from panel.host import oscontrol, processes
from panel.host.processes import BEAT, KINDS, WORKER
from panel.host.states import Program, State
from panel.target import SETTINGS as TARGET_SETTINGS

log = logging.getLogger("panel.supervisor")

SCRIPTS = {WORKER: ROOT / "start_celery_worker.sh", BEAT: ROOT / "start_celery_beat.sh"}
READY_POLL_S = 0.1
TAIL_LINES = 20
# Settings the worker and Beat must share with the panel that starts them.
CHILD_ENV_KEYS = ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CELERY_TIMEZONE", "CELERY_IMPORTS",
                  "WORKER_CONCURRENCY", "WORKER_POOL", "WORKER_QUEUES", "WORKER_LOGLEVEL",
                  "WORKER_NODENAME", "WORKER_MAX_TASKS_PER_CHILD", "BEAT_MAX_INTERVAL_S", "RECORD_RUNS",
                  *TARGET_SETTINGS)


@dataclass
class StartResult:
    kind: str
    ok: bool
    pids: list = field(default_factory=list)
    already_running: bool = False
    message: str = ""
    log_tail: str = ""


def tail(path, lines=TAIL_LINES, max_bytes=64 * 1024):
    """The last lines of a log file, read from its end."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            return "\n".join(fh.read().decode("utf-8", "replace").splitlines()[-lines:])
    except OSError:
        return ""


class Supervisor:
    """Owns the programs' states; every decision about processes is read from the table first."""

    manager = "panel"  # PROCESS_MANAGER: the panel starts them as its children and keeps them itself

    def __init__(self, config, celery, check_broker, worker_answers, on_event=None, on_intent=None):
        """`check_broker()` raises BrokerDown when the broker is away; `worker_answers(nodename, timeout_s)` is a
        ping of one worker: the OS seam asks the broker seam nothing itself."""
        self.instance = config["INSTANCE_PATH"]
        self.host = processes.Host.of(config)  # the instance and the app whose processes are ours
        self.config = config
        self.celery = celery
        self.check_broker = check_broker
        self.worker_answers = worker_answers
        self.on_event = on_event or (lambda **_: None)
        self.on_intent = on_intent or (lambda kind, desired, pids=None: None)  # what a person wants, followed
        self._held = threading.local()
        self.programs = {kind: Program(kind) for kind in KINDS}
        self.grace_s = config["STOP_GRACE_S"]
        self.start_timeout_s = config["START_TIMEOUT_S"]
        self.lock_wait_s = config["CONTROL_LOCK_WAIT_S"]
        self.nodename = host_format(config["WORKER_NODENAME"])

    def log_path(self, kind):
        return Path(self.instance) / "logs" / f"{kind}.log"

    def log_view(self, kind, lines):
        """The program's log file, its last lines (the path as shown: within the instance folder)."""
        path = self.log_path(kind)
        try:
            shown = path.resolve().relative_to(Path(self.instance).resolve()).as_posix()
        except ValueError:
            shown = path.name
        return {"path": shown, "exists": path.exists(), "lines": tail(path, lines).splitlines()}

    def log_text(self, kind, max_bytes):
        """The end of the program's log, for reading how it died."""
        return tail(self.log_path(kind), lines=10_000, max_bytes=max_bytes)

    @contextmanager
    def control_lock(self, wait_s=None):
        """One control action at a time across threads and processes (a file lock; re-entrant per thread)."""
        if getattr(self._held, "depth", 0):
            self._held.depth += 1
            try:
                yield
            finally:
                self._held.depth -= 1
            return
        path = Path(self.instance) / "run" / "control.lock"
        deadline = time.monotonic() + (self.lock_wait_s if wait_s is None else wait_s)
        with open(path, "w") as fh:
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise ControlBusy("another start, stop or restart is still in progress")
                    time.sleep(READY_POLL_S)
            self._held.depth = 1
            try:
                yield
            finally:
                self._held.depth = 0
                fcntl.flock(fh, fcntl.LOCK_UN)

    def status(self):
        """Live state of the worker and Beat, straight from the process table."""
        oscontrol.reap()
        table = self.host.scan()
        out = {}
        for kind in KINDS:
            refs = table[kind]
            program = self.programs[kind]
            out[kind] = {
                "active": bool(refs),
                "pids": [r.pid for r in refs],
                "count": len(refs),
                "pool_pids": {str(r.pid): list(r.children) for r in refs},
                "state": program.observe(bool(refs)).value,
                "reason": program.reason,
                "uptime_s": max(0, int(time.time() - min(r.create_time for r in refs))) if refs else None,
            }
        return out

    def start(self, kinds=KINDS, actor=None, cause="request"):
        """Start the given programs that are not running; raises BrokerDown when Redis is away."""
        with self.control_lock():
            self.check_broker()
            table = self.host.scan()
            results = {}
            for kind in kinds:
                if cause != "watchdog":
                    self.on_intent(kind, "running")
                if table[kind]:
                    pids = [r.pid for r in table[kind]]
                    results[kind] = StartResult(kind, True, pids, True,
                                                f"already running (PID {', '.join(map(str, pids))})")
                else:
                    self.programs[kind].observe(False)  # a crash nobody looked at yet: RUNNING -> EXITED
                    results[kind] = self._start_one(kind, actor, cause)
            return results

    def stop(self, kinds=KINDS, actor=None, cause="request"):
        """TERM every main process, KILL what is left after the grace; counts per kind."""
        with self.control_lock():
            return self._stop(kinds, actor, cause)

    def restart_beat(self, actor=None, cause="request"):
        """Stop Beat and start it again; None when Beat was not running."""
        with self.control_lock():
            refs = self.host.scan()[BEAT]
            if not refs:
                return None
            self.check_broker()  # before the stop: never stop what cannot start again
            old = [r.pid for r in refs]
            self._stop((BEAT,), actor, "restart")
            self.on_intent(BEAT, "running")
            result = self._start_one(BEAT, actor, "restart")
            return old, result

    def _stop(self, kinds, actor=None, cause="request"):
        for kind in kinds:  # before any signal: the watchdog must not take this stop for a crash
            self.on_intent(kind, "stopped")
        table = self.host.scan()
        refs = [ref for kind in kinds for ref in table[kind]]
        for kind in kinds:
            if table[kind]:
                # another process (a gunicorn worker, a shell) may have started it since this one last looked
                self.programs[kind].observe(True)
                self.programs[kind].change_state(State.STOPPING, "stop requested")
        try:
            ended = oscontrol.terminate(refs, self.grace_s)
        except PermissionError as exc:  # not ours to signal after all: nothing was stopped, and we say so
            self._stop_refused(kinds, table, exc, cause, actor)
            raise
        still = ended.left
        killed = {kind: 0 for kind in KINDS}
        for ref in ended.reached:
            if (ref.pid, ref.create_time) not in still:
                killed[ref.kind] += 1
        for kind in kinds:
            program = self.programs[kind]
            if program.state == State.STOPPING:
                program.change_state(State.STOPPED, "stopped by the panel")
            self.on_event(program=kind, action="stop", outcome="ok" if not still else "error",
                          pids=[r.pid for r in table[kind]], message=f"{killed[kind]} stopped", cause=cause,
                          actor=actor)
        return killed, [pid for pid, _ in still]

    def _stop_refused(self, kinds, table, exc, cause, actor):
        for kind in kinds:
            if self.programs[kind].state == State.STOPPING:
                self.programs[kind].change_state(State.RUNNING, f"the stop could not signal it: {exc}")
            self.on_intent(kind, "running")
            self.on_event(program=kind, action="stop", outcome="error", pids=[r.pid for r in table[kind]],
                          message=f"permission denied: {exc}", cause=cause, actor=actor)

    def child_env(self):
        env = dict(os.environ)
        env.update({key: str(self.config[key]) for key in CHILD_ENV_KEYS})
        env["DATABASE_URL"] = self.config["SQLALCHEMY_DATABASE_URI"]
        env[processes.INSTANCE_ENV] = self.instance
        # Resolved: Celery itself reads CELERY_APP and CELERY_WORKDIR as -A and --workdir, from any folder.
        target = self.host.target
        env.update(CELERY_APP=target.app, CELERY_WORKDIR=target.workdir, CELERY_BIN=target.celery_bin)
        return env

    def _start_one(self, kind, actor=None, cause="request"):
        program = self.programs[kind]
        program.change_state(State.STARTING, "start requested")
        path = self.log_path(kind)
        offset = path.stat().st_size if path.exists() else 0
        proc = oscontrol.spawn([str(SCRIPTS[kind]), "--foreground"], path, self.child_env(), str(ROOT))
        ok, reason = self._wait_ready(kind, proc, path, offset)
        if ok:
            program.change_state(State.RUNNING, "ready")
            result = StartResult(kind, True, [proc.pid], message=f"started (PID {proc.pid})")
        else:
            if proc.poll() is None:
                ref = next((r for r in self.host.scan()[kind] if r.pid == proc.pid), None)
                if ref:
                    oscontrol.kill(ref)
                proc.wait(timeout=oscontrol.KILL_WAIT_S)
            program.change_state(State.FATAL, reason)
            result = StartResult(kind, False, message=reason, log_tail=tail(path))
            log.error("%s failed to start: %s\n%s", kind, reason, result.log_tail)
        self.on_event(program=kind, action="start", outcome="ok" if ok else "error",
                      pids=result.pids, message=result.message, cause=cause, actor=actor,
                      exit_status=proc.poll() if not ok else None)
        return result

    def _wait_ready(self, kind, proc, path, offset):
        """Ready is proven, not assumed: the worker answers a ping, Beat logs its loaded schedule."""
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                return False, f"{kind} exited during start-up with status {code}"
            if kind == WORKER and self.worker_answers(self.nodename, 0.5):
                return True, ""
            if kind == BEAT and self.host.target.beat_ready_line in _read_from(path, offset):
                return True, ""
            time.sleep(READY_POLL_S)
        return False, f"{kind} did not become ready within {self.start_timeout_s:g} s"


def _read_from(path, offset):
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
