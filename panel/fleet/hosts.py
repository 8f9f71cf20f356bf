"""The hosts' pane: every host's supervisord asked at once (a thread each, each bounded by the timeout), and one
program of one host started, stopped or restarted."""
import ipaddress
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from urllib.parse import urlsplit

from panel.errors import NoSuchProgram, NotFound, PanelError, SupervisorFault, SupervisorSilent
from panel.host.supervisord import DEFAULT_TIMEOUT_S, Supervisord

log = logging.getLogger("panel.fleet")
KINDS = ("worker", "beat")
ACTIONS = ("start", "stop", "restart")
SLACK_S = 0.5  # beyond the calls' own timeout, before the pane stops waiting for a host
# A start of a running program and a stop of a stopped one leave it as asked: said, not refused.
ALREADY = {("start", "ALREADY_STARTED"): "was already running", ("stop", "NOT_RUNNING"): "was already stopped"}
INTENT = {"start": "running", "stop": "stopped", "restart": "restarting"}  # while the action is under way


class Fleet:
    """The hosts of SUPERVISORS ({name: url}) with the programs of SUPERVISOR_PROGRAMS ({worker|beat: program})."""

    def __init__(self, urls, programs, timeout_s=DEFAULT_TIMEOUT_S, local=None, on_event=None, on_intent=None):
        self.hosts = {name: Supervisord(name, url, timeout_s) for name, url in urls.items()}
        self.local = local  # the host whose worker and Beat the panel itself controls (PROCESS_MANAGER=supervisor)
        self.on_event = on_event or (lambda **_: None)  # the restart history
        self.on_intent = on_intent or (lambda host, kind, desired, pids=None: None)  # what the follower expects
        self._said = {}  # host -> the reason it was last said to be unreachable
        self._silent = {}  # host -> the look still out (or back) at a host that let a view wait out the timeout
        self._timeouts = set()  # hosts whose last look waited out the timeout
        self._lock = threading.Lock()
        self.programs = {kind: programs[kind] for kind in KINDS if kind in programs}
        self.timeout_s = timeout_s
        # Threads enough for two requests at once to ask every host without waiting for each other.
        self._pool = ThreadPoolExecutor(max_workers=max(4, 2 * len(self.hosts)), thread_name_prefix="fleet")

    @classmethod
    def from_config(cls, config, **hooks):
        """SUPERVISORS; with PROCESS_MANAGER=supervisor this host's supervisord is one of them (first, under this
        machine's name, unless SUPERVISORS lists its URL already)."""
        urls, local = dict(config.get("SUPERVISORS") or {}), None
        if config.get("PROCESS_MANAGER") == "supervisor":
            url = config["SUPERVISOR_URL"]
            local = next((name for name, given in urls.items() if given == url), None)
            if local is None:
                local = socket.gethostname().split(".")[0] or "localhost"
                urls = {local: url, **{name: given for name, given in urls.items() if name != local}}
        return cls(urls, config.get("SUPERVISOR_PROGRAMS") or {},
                   float(config.get("SUPERVISOR_TIMEOUT_S", DEFAULT_TIMEOUT_S)), local, **hooks)

    def view(self):
        """Every host, in the order they are listed: reachable or not (with the reason), its programs' states.

        A host that let a look wait out the timeout is not waited for again: until a look sent in the background
        comes back answered, every view says it is unreachable at once, so one silent host costs one poll the
        timeout, not every poll of every user."""
        with self._lock:
            silent = {name: self._probe(name) for name in self.hosts if name in self._silent}
        futures = {name: self._pool.submit(self._host_view, name) for name in self.hosts if name not in silent}
        wait(futures.values(), timeout=self.timeout_s + SLACK_S)
        views = []
        for name in self.hosts:
            future = futures.get(name)
            if future is None:
                views.append(silent[name])
            elif future.done():
                views.append(future.result())
                if name in self._timeouts:  # it let this look wait out the timeout: not waited for again
                    with self._lock:
                        self._silent[name] = future
            else:
                with self._lock:
                    self._silent[name] = future  # its answer, when it comes, tells whether to wait for it again
                views.append(self._down(name, self._timed_out(name)))
        return views

    def _timed_out(self, name):
        return f"supervisord on {name} did not answer within {self.timeout_s:g} s"

    def _probe(self, name):
        """A silent host's view without waiting: its last look's answer once back (a new look goes out meanwhile)."""
        out = self._silent[name]
        if not out.done():
            return self._down(name, self._timed_out(name))
        answer = out.result()
        if name not in self._timeouts:
            del self._silent[name]  # it answers again (or refuses at once): waited for as before, from the next view
        else:
            self._silent[name] = self._pool.submit(self._host_view, name)
        return answer

    def _host_view(self, name):
        self._timeouts.discard(name)
        try:
            found = self.hosts[name].programs()
        except SupervisorSilent as exc:
            self._timeouts.add(name)
            return self._down(name, str(exc))
        except PanelError as exc:
            return self._down(name, str(exc))
        except Exception as exc:  # a host fails alone, whatever it does
            log.exception("asking supervisord on %s", name)
            return self._down(name, self.hosts[name].redact(f"{type(exc).__name__}: {exc}"))
        if self._said.pop(name, None):
            log.info("host %s answers again", name)
        return {"name": name, "reachable": True, "error": None,
                "programs": [_program(kind, program, found[program]) for kind, program in self.programs.items()
                             if program in found]}

    def _down(self, name, reason):
        if self._said.get(name) != reason:  # once per change, not at every look (the follower looks each second)
            log.warning("host %s: %s", name, reason)
        self._said[name] = reason
        return {"name": name, "reachable": False, "error": reason, "programs": []}

    def supervisord(self, host, kind):
        """The host's supervisord and Supervisor's name for the program; NotFound for either unknown."""
        if host not in self.hosts:
            raise NotFound(f"no host {host!r}: the hosts are {', '.join(self.hosts) or 'none (SUPERVISORS is empty)'}")
        if kind not in self.programs:
            raise NotFound(f"no {kind} program is configured (SUPERVISOR_PROGRAMS)")
        return self.hosts[host], self.programs[kind]

    def act(self, host, kind, action, actor=None):
        """Start, stop or restart one program on one host, waiting for supervisord; its state after, in words. The
        follower is told before (so the PID going is not a crash) and after (the PID it left); the history too."""
        if action not in ACTIONS:
            raise NotFound(f"no action {action!r}: one of {', '.join(ACTIONS)}")
        sup, program = self.supervisord(host, kind)
        before = sup.program(program)  # quick: an unreachable host or unknown program answers within the timeout
        started = time.monotonic()
        self.on_intent(host, kind, INTENT[action])
        try:
            after = getattr(sup, action)(program)
            message = f"{kind} ({program}) on {host}: {action} done, now {after['state']}"
        except SupervisorFault as exc:
            if (action, exc.fault) not in ALREADY:
                self._failed(host, kind, action, before, exc, actor)
                raise
            after = sup.program(program)
            message = f"{kind} ({program}) on {host} {ALREADY[action, exc.fault]}"
        except PanelError as exc:
            self._failed(host, kind, action, before, exc, actor)
            raise
        log.info("%s (%.1f s; before %s pid %s)", message, time.monotonic() - started, before["state"], before["pid"])
        self.on_intent(host, kind, "stopped" if action == "stop" else "running", _pids(after))
        self.on_event(program=kind, action=action, outcome="ok", pids=_pids(before) + _pids(after), message=message,
                      host=host, actor=actor)
        return {"host": host, "action": action, "message": message, **_program(kind, program, after)}

    def _failed(self, host, kind, action, before, exc, actor):
        """An action that did not happen: the follower expects what was there before, the history says why."""
        self.on_intent(host, kind, "running" if before["pid"] else "stopped", _pids(before))
        self.on_event(program=kind, action=action, outcome="error", pids=_pids(before), message=str(exc), host=host,
                      actor=actor)

    def act_everywhere(self, action, actor=None):
        """Start or stop the worker and Beat on every host but the panel's own, all at once: per host what happened."""
        names = [name for name in self.hosts if name != self.local]
        futures = {name: self._pool.submit(self._act_host, name, action, actor) for name in names}
        return [futures[name].result() for name in names]

    def _act_host(self, name, action, actor):
        said, ok = [], True
        for kind in self.programs:
            try:
                said.append(self.act(name, kind, action, actor)["message"])
            except NoSuchProgram:  # a host without Beat
                continue
            except PanelError as exc:
                ok = False
                said.append(str(exc))
            except Exception as exc:  # a host fails alone, whatever it does
                log.exception("%s on %s", action, name)
                ok = False
                said.append(self.hosts[name].redact(f"{type(exc).__name__}: {exc}"))
        return {"host": name, "ok": ok, "message": "; ".join(said) or f"{name} runs no worker or Beat program"}


def place_nodes(hosts, nodes):
    """Each host with the Celery nodes (seen through events) that run on it: the node whose PID is its worker
    program's, else whose name's host part (after @) is the host's name. `nodes`: dicts with name, hostname, pid,
    online."""
    for host in hosts:
        pids = {p["pid"] for p in host["programs"] if p["name"] == "worker" and p["pid"]}
        host["nodes"] = [{"name": n["name"], "online": n["online"], "pid": n["pid"]} for n in nodes
                         if (n["online"] and n["pid"] in pids) or n["hostname"] == host["name"]]
    return hosts


def _pids(info):
    return [info["pid"]] if info["pid"] else []


def _program(kind, program, info):
    return {"name": kind, "program": program, "state": info["state"], "pid": info["pid"], "uptime_s": info["uptime_s"]}


def exposed(urls):
    """Warnings for hosts reached over plain http:// on an address that is not loopback: basic auth sends the
    password in clear over that network (celery-check says so, with the safer ways)."""
    warnings = []
    for name, url in urls.items():
        parts = urlsplit(url)
        if parts.scheme == "http" and not _loopback(parts.hostname or ""):
            warnings.append(f"{name}: supervisord over plain http:// on {parts.hostname}: its password crosses the "
                            "network in clear; keep it on a private network, use unix:// or an SSH tunnel to loopback")
    return warnings


def _loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
