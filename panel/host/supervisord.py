"""A host's own supervisord, through its XML-RPC interface: its programs' states, start, stop, restart, log tail.

Reached over `http://user:password@host:port` (basic auth) or `unix:///path/to/supervisor.sock`, every call with
a timeout. The outside world's failures become the house's errors in words, and no message ever holds a password.
"""
import http.client
import re
import signal
import socket
import xmlrpc.client
from urllib.parse import unquote, urlsplit

from panel.errors import NoSuchProgram, SupervisorFault, SupervisorRefused, SupervisorSilent, SupervisorUnreachable

DEFAULT_TIMEOUT_S = 2.0
ACTION_TIMEOUT_S = 60.0  # a start or stop waits for supervisord's own startsecs / stopwaitsecs, longer than a look
LOG_TAIL_BYTES = 16384
MAIN_LOG_BYTES = 65536  # of supervisord's own log, where it says how a program's process ended
# supervisord's own words when a process ended (supervisor/process.py `finish`, options.py `decode_wait_status`).
SPAWNED = re.compile(r"spawned: '(?P<name>[^']+)' with pid (?P<pid>\d+)")
ENDED = re.compile(r"(?:exited|stopped): (?P<name>\S+) \((?:terminated by (?P<signal>SIG[A-Z0-9]+)|exit status "
                   r"(?P<code>\d+))")
STATES = ("STOPPED", "STARTING", "RUNNING", "BACKOFF", "STOPPING", "EXITED", "FATAL", "UNKNOWN")
UP_STATES = ("RUNNING", "STOPPING")  # a process that has a start time worth an uptime
# Supervisor's fault codes (supervisor/xmlrpc.py), in words a person reads.
FAULTS = {
    10: ("BAD_NAME", "has no such program"),
    30: ("FAILED", "failed"),
    40: ("ABNORMAL_TERMINATION", "the program exited while stopping or starting"),
    50: ("SPAWN_ERROR", "could not start the program"),
    60: ("ALREADY_STARTED", "the program is already running"),
    70: ("NOT_RUNNING", "the program is not running"),
    6: ("SHUTDOWN_STATE", "supervisord is shutting down"),
}
_CREDENTIALS = re.compile(r"(?P<user>(?:[a-z][a-z0-9+.-]*://)?[^\s:/@]+):[^\s@/]+@", re.IGNORECASE)


def redact(text):
    """`http://user:secret@h:p` (or `user:secret@h:p`) becomes `http://user:***@h:p`, wherever it is in `text`."""
    return _CREDENTIALS.sub(lambda m: f"{m.group('user')}:***@", str(text))


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over an AF_UNIX socket, as supervisorctl talks to `unix:///path/to/supervisor.sock`."""

    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class _Transport(xmlrpc.client.Transport):
    """The standard transport with a timeout on every connection, over TCP or a unix socket."""

    def __init__(self, timeout_s, socket_path=None):
        super().__init__()
        self.timeout_s, self.socket_path = timeout_s, socket_path

    def make_connection(self, host):
        if self.socket_path:
            return _UnixConnection(self.socket_path, self.timeout_s)
        connection = super().make_connection(host)
        connection.timeout = self.timeout_s
        return connection


class Supervisord:
    """One host's supervisord. Thread-safe: every call opens its own connection."""

    def __init__(self, name, url, timeout_s=DEFAULT_TIMEOUT_S):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "unix"):
            raise ValueError(f"{name}: a supervisord URL is http://user:password@host:port or unix:///path")
        self.name, self.timeout_s = name, timeout_s
        self._secret = unquote(parts.password or "")
        self._socket = parts.path if parts.scheme == "unix" else None
        # xmlrpc.client reads the user and password out of the URL and sends them as basic auth.
        self._endpoint = "http://localhost/RPC2" if self._socket else f"http://{parts.netloc}/RPC2"

    def redact(self, text):
        """Any message about this host, its password masked even where it shows without its URL."""
        text = redact(text)
        return text.replace(self._secret, "***") if self._secret else text

    def _call(self, method, *args, timeout_s=None):
        proxy = xmlrpc.client.ServerProxy(self._endpoint, transport=_Transport(timeout_s or self.timeout_s,
                                                                              self._socket), allow_none=True)
        try:
            return getattr(proxy.supervisor, method)(*args)
        except xmlrpc.client.Fault as fault:
            raise self._fault(fault, args) from None
        except xmlrpc.client.ProtocolError as exc:
            if exc.errcode == 401:
                raise SupervisorRefused(f"supervisord on {self.name} refused the credentials") from None
            raise SupervisorUnreachable(f"supervisord on {self.name} answered HTTP {exc.errcode} "
                                        f"{self.redact(exc.errmsg)}") from None
        except TimeoutError:
            raise SupervisorSilent(f"supervisord on {self.name} did not answer within "
                                        f"{timeout_s or self.timeout_s:g} s") from None
        except (OSError, http.client.HTTPException) as exc:
            reason = self.redact(exc.strerror if isinstance(exc, OSError) and exc.strerror else exc) or "no answer"
            raise SupervisorUnreachable(f"supervisord on {self.name} is unreachable: {reason}") from None
        except Exception as exc:  # an answer that is no XML-RPC: not a supervisord at that address
            raise SupervisorUnreachable(f"supervisord on {self.name} did not answer as supervisord: "
                                        f"{type(exc).__name__}") from None

    def _fault(self, fault, args):
        name, words = FAULTS.get(fault.faultCode, (str(fault.faultCode), self.redact(fault.faultString)))
        program = args[0] if args else ""
        if name == "BAD_NAME":
            return NoSuchProgram(f"supervisord on {self.name} {words}: {program}")
        return SupervisorFault(f"supervisord on {self.name}: {program}: {words}", name)

    def programs(self):
        """Every program of this supervisord: {program name: its info}."""
        return {_full_name(info): as_info(info) for info in self._call("getAllProcessInfo")}

    def program(self, program):
        return as_info(self._call("getProcessInfo", program))

    def start(self, program, timeout_s=ACTION_TIMEOUT_S):
        """Start and wait for supervisord to call it RUNNING (its startsecs); SupervisorFault when it cannot."""
        self._call("startProcess", program, True, timeout_s=timeout_s)
        return self.program(program)

    def stop(self, program, timeout_s=ACTION_TIMEOUT_S):
        """Stop and wait until it is gone (supervisord kills it after its stopwaitsecs)."""
        self._call("stopProcess", program, True, timeout_s=timeout_s)
        return self.program(program)

    def restart(self, program, timeout_s=ACTION_TIMEOUT_S):
        """Stop (a program not running is fine), then start, each waited for."""
        try:
            self.stop(program, timeout_s)
        except SupervisorFault as exc:
            if exc.fault != "NOT_RUNNING":
                raise
        return self.start(program, timeout_s)

    def tail(self, program, length=LOG_TAIL_BYTES):
        """The end of the program's stdout log, as supervisorctl's tail shows it."""
        text, _offset, _overflow = self._call("tailProcessStdoutLog", program, 0, length)
        return text

    def last_exit(self, program, pid=None):
        """How the program's process `pid` (else its last one) ended, as supervisord logged it: the status as the
        panel's own (negative: the signal), or None when its log does not say (a log level above info, a log
        rotated away, a process of which it says nothing yet)."""
        name = program.rpartition(":")[2]
        spawned, found = None, None
        for line in self._call("readLog", -MAIN_LOG_BYTES, 0).splitlines():
            if (m := SPAWNED.search(line)) and m.group("name") == name:
                spawned = int(m.group("pid"))
            elif (m := ENDED.search(line)) and m.group("name") == name and pid in (None, spawned):
                found = _status(m)
        return found


def _status(ended):
    if ended.group("code") is not None:
        return int(ended.group("code"))
    known = signal.Signals.__members__.get(ended.group("signal"))
    return -known.value if known else None


def _full_name(info):
    """Supervisor's name for a process: `program`, or `group:program` inside a group of another name."""
    return info["name"] if info["group"] == info["name"] else f"{info['group']}:{info['name']}"


def as_info(info):
    """Supervisor's process info as the panel shows it: its state's name, PID (None when down), uptime."""
    state = info.get("statename") if info.get("statename") in STATES else "UNKNOWN"
    up = state in UP_STATES and info.get("start")
    return {"state": state, "pid": info.get("pid") or None,
            "uptime_s": max(0, info["now"] - info["start"]) if up else None,
            "spawn_error": info.get("spawnerr") or "", "exit_status": info.get("exitstatus"),
            "start": info.get("start") or None}
