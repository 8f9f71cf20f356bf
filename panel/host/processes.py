"""The process table: the one place that decides whether a process is this panel's worker or Beat."""
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import psutil

from panel.config import DEFAULT_INSTANCE
from panel.target import EMBEDDED, EMBEDDED_APP, Target

WORKER, BEAT = "worker", "beat"
KINDS = (WORKER, BEAT)
INSTANCE_ENV = "PANEL_INSTANCE_PATH"
# Global celery options that take a value, so the value is not read as the subcommand.
_VALUE_OPTIONS = {"-A", "--app", "-b", "--broker", "--result-backend", "--loader", "--config", "--workdir"}


@dataclass(frozen=True)
class ProcessRef:
    """A process as we saw it: (pid, create_time) and command line identify it."""

    pid: int
    create_time: float
    cmdline: tuple
    kind: str
    children: tuple = field(default=())


def celery_args(argv):
    """The arguments after the celery program, or None when argv does not run celery itself."""
    if not argv:
        return None
    first = os.path.basename(argv[0])
    if first == "celery":
        return argv[1:]
    if first.startswith("python") and len(argv) > 1:
        if os.path.basename(argv[1]) == "celery":
            return argv[2:]
        if argv[1:3] == ["-m", "celery"]:
            return argv[3:]
    return None


def classify(argv, app_module=EMBEDDED_APP):
    """'worker', 'beat' or None for a command line; pure, so decoys are easy to test."""
    args = celery_args(list(argv))
    if args is None:
        return None
    app, sub, i = None, None, 0
    while i < len(args):
        token = args[i]
        if token in ("-A", "--app"):
            app = args[i + 1] if i + 1 < len(args) else None
            i += 2
            continue
        if token.startswith("--app="):
            app = token.split("=", 1)[1]
        elif token.startswith("-A") and len(token) > 2:
            app = token[2:]
        elif token in _VALUE_OPTIONS:
            i += 1
        elif not token.startswith("-"):
            sub = token
            break
        i += 1
    if app != app_module or sub not in KINDS:
        return None
    return sub


def _instance_of(proc):
    """The instance folder a Celery process serves; untagged processes serve the default one."""
    tag = proc.environ().get(INSTANCE_ENV)
    return str(Path(tag).resolve()) if tag else str(DEFAULT_INSTANCE)


def _is_ours(proc, instance, workdir):
    """Same project folder and same instance: never a neighbour's or another test run's Celery."""
    try:
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return proc.cwd() == workdir and _instance_of(proc) == instance
    except (psutil.Error, OSError):
        return False


PROC = Path("/proc")
PF_FORKNOEXEC = 0x40  # the kernel's per-process flag: forked, and no exec since


def _forked_without_exec(pid):
    """True for a fork that never ran exec: a pool child, never a worker someone started (those exec celery)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()  # the name in (...) may hold spaces
        return bool(int(fields[6]) & PF_FORKNOEXEC)
    except (OSError, IndexError, ValueError):
        return False


def _command_lines():
    """(pid, argv) for every process that mentions celery; /proc read directly where it exists (3x cheaper)."""
    if not PROC.is_dir():
        for proc in psutil.process_iter(["cmdline"]):
            yield proc.pid, proc.info["cmdline"] or []
        return
    for pid in psutil.pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                raw = fh.read()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if b"celery" in raw:
            yield pid, raw.rstrip(b"\0").decode("utf-8", "replace").split("\0")


def scan(instance, target=EMBEDDED):
    """All of this instance's workers and Beats of the target app, pool children folded under their worker."""
    candidates = {}
    for pid, argv in _command_lines():
        kind = classify(argv, target.app)
        if kind:
            try:
                candidates[pid] = (psutil.Process(pid), kind, tuple(argv))
            except psutil.Error:
                continue
    found, pool = {}, {}
    for pid, (proc, kind, argv) in candidates.items():
        if not _is_ours(proc, instance, target.workdir):
            continue
        try:
            ppid = proc.ppid()
            parent = candidates.get(ppid)
            if kind == WORKER and parent and parent[1] == WORKER:
                pool.setdefault(ppid, []).append(pid)
                continue
            if kind == WORKER and _forked_without_exec(pid):
                continue  # a pool child whose worker just died, in the moment before it dies too (PDEATHSIG)
            found[pid] = (proc.create_time(), argv, kind)
        except psutil.Error:
            continue
    refs = [ProcessRef(pid, ct, cmd, kind, tuple(sorted(pool.get(pid, ()))))
            for pid, (ct, cmd, kind) in sorted(found.items())]
    return {kind: [r for r in refs if r.kind == kind] for kind in KINDS}


def pool_child(instance, pid, target=EMBEDDED):
    """A ProcessRef for pid when it is a pool child of one of this instance's workers, else None."""
    return pool_ref(scan(instance, target)[WORKER], pid)


def pool_ref(workers, pid):
    """A ProcessRef for pid when it is a pool child of one of these workers, else None."""
    for worker in workers:
        if pid in worker.children:
            try:
                proc = psutil.Process(pid)
                return ProcessRef(pid, proc.create_time(), tuple(proc.cmdline()), "pool")
            except psutil.Error:
                return None
    return None


def still_same(ref):
    """True when the pid still names the very process we saw, not a reused pid: the check before a signal.

    Strict: a command line that reads differently, or empty (a process in the middle of exec or exit),
    is not ours to signal.
    """
    try:
        proc = psutil.Process(ref.pid)
        return (proc.create_time() == ref.create_time and tuple(proc.cmdline()) == ref.cmdline
                and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def not_gone(ref):
    """True while the process we saw has not ended: same pid and start time, not a zombie.

    For waiting on an exit: a process in the middle of exiting has released its memory and its command
    line reads empty, yet it has not ended.
    """
    try:
        proc = psutil.Process(ref.pid)
        return proc.create_time() == ref.create_time and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class Host(NamedTuple):
    """This panel's own Celery processes: its instance folder and the app it runs there."""

    instance: str
    target: Target = EMBEDDED

    @classmethod
    def of(cls, settings):
        return cls(str(settings["INSTANCE_PATH"]), Target.of(settings))

    def scan(self):
        return scan(self.instance, self.target)

    def pool_child(self, pid):
        return pool_child(self.instance, pid, self.target)


def main(argv=None):
    """`python -m panel.host.processes beat|worker`: print this instance's PIDs, exit 1 when none."""
    import sys

    from panel.config import instance_path, read_env

    args = sys.argv[1:] if argv is None else argv
    kind = args[0] if args else BEAT
    env = read_env()
    refs = scan(str(instance_path(env)), Target.of(env))[kind]
    print(" ".join(str(r.pid) for r in refs))
    return 0 if refs else 1


if __name__ == "__main__":
    raise SystemExit(main())
