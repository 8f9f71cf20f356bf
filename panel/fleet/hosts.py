"""The hosts' pane: every host's supervisord asked at once (a thread each, each bounded by the timeout), and one
program of one host started, stopped or restarted."""
import ipaddress
import logging
import time
from concurrent.futures import ThreadPoolExecutor, wait
from urllib.parse import urlsplit

from panel.errors import NotFound, PanelError, SupervisorFault
from panel.host.supervisord import DEFAULT_TIMEOUT_S, Supervisord

log = logging.getLogger("panel.fleet")
KINDS = ("worker", "beat")
ACTIONS = ("start", "stop", "restart")
SLACK_S = 0.5  # beyond the calls' own timeout, before the pane stops waiting for a host
# A start of a running program and a stop of a stopped one leave it as asked: said, not refused.
ALREADY = {("start", "ALREADY_STARTED"): "was already running", ("stop", "NOT_RUNNING"): "was already stopped"}


class Fleet:
    """The hosts of SUPERVISORS ({name: url}) with the programs of SUPERVISOR_PROGRAMS ({worker|beat: program})."""

    def __init__(self, urls, programs, timeout_s=DEFAULT_TIMEOUT_S):
        self.hosts = {name: Supervisord(name, url, timeout_s) for name, url in urls.items()}
        self.programs = {kind: programs[kind] for kind in KINDS if kind in programs}
        self.timeout_s = timeout_s
        # Threads enough for two requests at once to ask every host without waiting for each other.
        self._pool = ThreadPoolExecutor(max_workers=max(4, 2 * len(self.hosts)), thread_name_prefix="fleet")

    @classmethod
    def from_config(cls, config):
        return cls(config.get("SUPERVISORS") or {}, config.get("SUPERVISOR_PROGRAMS") or {},
                   float(config.get("SUPERVISOR_TIMEOUT_S", DEFAULT_TIMEOUT_S)))

    def view(self):
        """Every host, in the order they are listed: reachable or not (with the reason), its programs' states."""
        futures = {name: self._pool.submit(self._host_view, name) for name in self.hosts}
        wait(futures.values(), timeout=self.timeout_s + SLACK_S)
        return [future.result() if future.done() else self._down(name, f"supervisord on {name} did not answer "
                                                                        f"within {self.timeout_s:g} s")
                for name, future in futures.items()]

    def _host_view(self, name):
        try:
            found = self.hosts[name].programs()
        except PanelError as exc:
            return self._down(name, str(exc))
        except Exception as exc:  # a host fails alone, whatever it does
            log.exception("asking supervisord on %s", name)
            return self._down(name, self.hosts[name].redact(f"{type(exc).__name__}: {exc}"))
        return {"name": name, "reachable": True, "error": None,
                "programs": [_program(kind, program, found[program]) for kind, program in self.programs.items()
                             if program in found]}

    def _down(self, name, reason):
        log.warning("host %s: %s", name, reason)
        return {"name": name, "reachable": False, "error": reason, "programs": []}

    def supervisord(self, host, kind):
        """The host's supervisord and Supervisor's name for the program; NotFound for either unknown."""
        if host not in self.hosts:
            raise NotFound(f"no host {host!r}: the hosts are {', '.join(self.hosts) or 'none (SUPERVISORS is empty)'}")
        if kind not in self.programs:
            raise NotFound(f"no {kind} program is configured (SUPERVISOR_PROGRAMS)")
        return self.hosts[host], self.programs[kind]

    def act(self, host, kind, action):
        """Start, stop or restart one program on one host, waiting for supervisord; its state after, in words."""
        if action not in ACTIONS:
            raise NotFound(f"no action {action!r}: one of {', '.join(ACTIONS)}")
        sup, program = self.supervisord(host, kind)
        before = sup.program(program)  # quick: an unreachable host or unknown program answers within the timeout
        started = time.monotonic()
        try:
            after = getattr(sup, action)(program)
            message = f"{kind} ({program}) on {host}: {action} done, now {after['state']}"
        except SupervisorFault as exc:
            if (action, exc.fault) not in ALREADY:
                raise
            after = sup.program(program)
            message = f"{kind} ({program}) on {host} {ALREADY[action, exc.fault]}"
        log.info("%s (%.1f s; before %s pid %s)", message, time.monotonic() - started, before["state"], before["pid"])
        return {"host": host, "action": action, "message": message, **_program(kind, program, after)}


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
