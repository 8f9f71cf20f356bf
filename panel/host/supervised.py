"""PROCESS_MANAGER=supervisor: the worker and Beat are programs of this host's supervisord. The panel asks, Supervisor
starts, stops and keeps them (it restarts a crash; the panel's watchdog stands down), and the process table is read
from the PIDs Supervisor gives: a start never makes a second copy or takes a process away from Supervisor."""
import logging
import time

import psutil

from panel.errors import NoSuchProgram, PanelError, SupervisorFault
from panel.host import processes
from panel.host.processes import KINDS, WORKER, ProcessRef
from panel.host.states import State
from panel.host.supervisor import StartResult, Supervisor
from panel.host.supervisord import ACTION_TIMEOUT_S, Supervisord

log = logging.getLogger("panel.supervised")


def celery_process(pid):
    """The Celery process Supervisor's PID stands for: itself, or the first one under a wrapper that did not exec."""
    try:
        proc = psutil.Process(pid)
        for candidate in (proc, *proc.children(recursive=True)):
            if processes.celery_args(candidate.cmdline()) is not None:
                return candidate
        return proc
    except psutil.Error:
        return None


def ref_of(kind, pid):
    """A ProcessRef for the program's process, its pool processes as children; None when it is gone."""
    proc = celery_process(pid)
    try:
        return ProcessRef(proc.pid, proc.create_time(), tuple(proc.cmdline()), kind,
                          tuple(sorted(c.pid for c in proc.children()))) if proc else None
    except psutil.Error:
        return None


class SupervisedHost:
    """This host's Celery processes as its supervisord knows them: the programs of SUPERVISOR_PROGRAMS."""

    def __init__(self, instance, target, client, programs):
        self.instance, self.target, self.client, self.programs = instance, target, client, programs

    def infos(self):
        """Supervisor's info per kind (None for a kind it does not run); SupervisorUnreachable when it is away."""
        found = self.client.programs()
        return {kind: found.get(self.programs[kind]) if kind in self.programs else None for kind in KINDS}

    def scan(self):
        infos = self.infos()
        refs = {kind: ref_of(kind, info["pid"]) if info and info["pid"] else None for kind, info in infos.items()}
        return {kind: [ref] if ref else [] for kind, ref in refs.items()}

    def pool_child(self, pid):
        """A ProcessRef for pid when it is a pool process of the worker Supervisor runs, else None."""
        return processes.pool_ref(self.scan()[WORKER], pid)


class Supervised(Supervisor):
    """The same doors as the panel's own supervision (status, start, stop, restart, the log), Supervisor behind them."""

    manager = "supervisor"

    def __init__(self, config, celery, check_broker, worker_answers, on_event=None, on_intent=None):
        super().__init__(config, celery, check_broker, worker_answers, on_event, on_intent)
        self.client = Supervisord("this host", config["SUPERVISOR_URL"], float(config["SUPERVISOR_TIMEOUT_S"]))
        self.program_names = {kind: name for kind, name in config["SUPERVISOR_PROGRAMS"].items() if kind in KINDS}
        self.host = SupervisedHost(self.instance, self.host.target, self.client, self.program_names)

    def status(self):
        """Supervisor's own states and PIDs; when supervisord does not answer, UNKNOWN with the reason."""
        try:
            infos = self.host.infos()
        except PanelError as exc:
            return {kind: _status(None, None, "UNKNOWN", str(exc)) for kind in KINDS}
        out = {}
        for kind, info in infos.items():
            if info is None:
                out[kind] = _status(None, None, State.STOPPED.value,
                                    f"supervisord runs no {kind} program here (SUPERVISOR_PROGRAMS)")
                continue
            reason = info["spawn_error"] or f"Supervisor's {self.program_names[kind]}"
            out[kind] = _status(info, ref_of(kind, info["pid"]) if info["pid"] else None, info["state"], reason)
        return out

    def _start_one(self, kind, actor=None, cause="request"):
        """Ask supervisord to start it and wait for its RUNNING, then for the worker to answer a ping."""
        program = self.program_names.get(kind)
        if program is None:
            return StartResult(kind, True, message=f"no {kind} program is managed on this host")
        said = "started by Supervisor"
        try:
            after = self.client.start(program, timeout_s=self.start_timeout_s + ACTION_TIMEOUT_S)
            ok, reason = self._ready(kind, after)
        except NoSuchProgram:  # a host without Beat: nothing of it to start
            return StartResult(kind, True, message=f"supervisord runs no {program} program on this host")
        except SupervisorFault as exc:
            if exc.fault != "ALREADY_STARTED":
                ok, reason, after = False, str(exc), {"pid": None}
            else:  # started meanwhile (supervisorctl, another panel process): one copy, Supervisor's
                after, said = self.client.program(program), "already running under Supervisor"
                ok, reason = True, ""
        given = [after["pid"]] if after["pid"] else []  # Supervisor's PID: what the follower compares
        ref = ref_of(kind, after["pid"]) if after["pid"] else None
        pids = [ref.pid] if ref else given  # the Celery process, as the status shows it (a wrapper's child)
        result = (StartResult(kind, True, pids, message=f"{said} (PID {', '.join(map(str, pids))})")
                  if ok else StartResult(kind, False, message=reason, log_tail=self._tail(program)))
        self.on_intent(kind, "running", given)
        self.on_event(program=kind, action="start", outcome="ok" if ok else "error", pids=pids,
                      message=result.message, cause=cause, actor=actor)
        return result

    def _ready(self, kind, info):
        """Supervisor says RUNNING after its startsecs; the worker is ready when it answers, as with the panel's."""
        if info["state"] != "RUNNING":
            return False, f"Supervisor left it {info['state']}: {info['spawn_error'] or 'see its log'}"
        deadline = time.monotonic() + self.start_timeout_s
        while kind == WORKER and not self.worker_answers(self.nodename, 0.5):
            if time.monotonic() >= deadline:
                return False, f"worker did not answer {self.nodename} within {self.start_timeout_s:g} s"
        return True, ""

    def _stop(self, kinds, actor=None, cause="request"):
        """Ask supervisord to stop each (it waits its stopwaitsecs, then kills); it does not start them again."""
        table = self.host.scan()
        stopped, still = {kind: 0 for kind in KINDS}, []
        for kind in kinds:
            program = self.program_names.get(kind)
            if program is None:
                continue
            self.on_intent(kind, "stopped")  # before the stop: the follower must not take it for a crash
            pids = [r.pid for r in table[kind]]
            try:
                after = self.client.stop(program, timeout_s=ACTION_TIMEOUT_S)
            except NoSuchProgram:  # a host without Beat: nothing of it to stop
                continue
            except SupervisorFault as exc:
                if exc.fault != "NOT_RUNNING":
                    self._stop_failed(kind, pids, exc, cause, actor)
                    raise
                after = {"pid": None}
            stopped[kind] = len(pids) if not after["pid"] else 0
            still += [after["pid"]] if after["pid"] else []
            self.on_intent(kind, "stopped", [])
            self.on_event(program=kind, action="stop", outcome="ok" if not after["pid"] else "error", pids=pids,
                          message=f"{stopped[kind]} stopped by Supervisor", cause=cause, actor=actor)
        return stopped, still

    def _stop_failed(self, kind, pids, exc, cause, actor):
        self.on_intent(kind, "running")
        self.on_event(program=kind, action="stop", outcome="error", pids=pids, message=str(exc), cause=cause,
                      actor=actor)

    def _tail(self, program, lines=None):
        try:
            text = self.client.tail(program)
        except PanelError as exc:
            return f"(its log could not be read: {exc})"
        return "\n".join(text.splitlines()[-(lines or 20):])

    def log_view(self, kind, lines):
        """The program's stdout log as supervisord keeps it (tailProcessStdoutLog)."""
        program = self.program_names.get(kind)
        if program is None:
            return {"path": f"no {kind} program (SUPERVISOR_PROGRAMS)", "exists": False, "lines": []}
        return {"path": f"supervisord: {program}", "exists": True, "lines": self._tail(program, lines).splitlines()}


def _status(info, ref, state, reason):
    """One program as the panel's status shows it, in Supervisor's words."""
    return {"active": ref is not None, "pids": [ref.pid] if ref else [], "count": 1 if ref else 0,
            "pool_pids": {str(ref.pid): list(ref.children)} if ref else {}, "state": state, "reason": reason,
            "uptime_s": info["uptime_s"] if info else None}
