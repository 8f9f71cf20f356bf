"""Run-log writes the database refused (locked too long, unreachable), kept on disk until it answers.

Each process appends to its own file under instance/run/spool/; while a process has writes waiting,
its new writes queue behind them, so one run's changes land in the order they happened. The panel's
background loop (and the process itself, on its next write) replays the files; a file is renamed
before replay, so two processes never write the same entries twice, and its owner keeps queueing
until that replay is over (a new change must not overtake the old ones in another process's hands).
A file claimed by a process that died during its replay is picked up again.
"""
import fcntl
import json
import logging
import os
import threading
import time
from datetime import datetime
from pathlib import Path

log = logging.getLogger("panel.spool")
_lock = threading.Lock()


def _encode(value):
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    raise TypeError(f"cannot keep {type(value).__name__} in the spool")


def _claimer(path):
    """The pid replaying a claimed file, None for any other file."""
    kind, _, pid = path.suffix.partition("-")
    return int(pid) if kind == ".replaying" and pid.isdigit() else None


def _alive(pid):
    try:
        os.kill(pid, 0)  # signal 0: existence only; PermissionError means it exists too
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _decode(obj):
    return datetime.fromisoformat(obj["$dt"]) if set(obj) == {"$dt"} else obj


class _Refused(Exception):
    def __init__(self, at, done, error):
        super().__init__(error)
        self.at, self.done, self.error = at, done, error


class _NotReady(Exception):
    def __init__(self, at, done):
        super().__init__(at)
        self.at, self.done = at, done


class Spool:
    """The spool of one instance folder."""

    def __init__(self, instance_path):
        self.folder = Path(instance_path) / "run" / "spool"
        self.mine = self.folder / f"{os.getpid()}.jsonl"
        self.pending = False  # this process has writes waiting: new ones queue behind them

    def keep(self, steps, reason):
        """Append one failed write (a list of (statement name, values)) to this process's file."""
        with _lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.mine = self.folder / f"{os.getpid()}.jsonl"  # after a fork the pid differs
            with open(self.mine, "a") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)  # a replay putting entries back must not interleave
                entry = {"at": time.time(), "steps": [[name, values] for name, values in steps]}
                fh.write(json.dumps(entry, default=_encode) + "\n")
            if not self.pending:
                log.error("the database refused a run-log write (%s); keeping it in %s until it answers",
                          reason, self.mine)
            self.pending = True

    def waiting(self):
        """Files with writes waiting, from every process of this instance (and orphaned claims)."""
        try:
            return sorted(p for p in self.folder.iterdir()
                          if p.suffix == ".jsonl" or (_claimer(p) is not None and not _alive(_claimer(p))))
        except FileNotFoundError:
            return []

    def _mine_in_flight(self):
        """Whether this process's entries wait in its file or in another process's replay."""
        return self.mine.exists() or any(self.folder.glob(f"{self.mine.stem}.replaying-*"))

    def replay(self, write, refused, ready=lambda steps, age_s: True):
        """Write what waits, file by file in order; stop while `refused(error)`, wait while not `ready`.

        `ready` lets a change wait for its run's row, which another process may still be keeping.
        """
        done = 0
        for path in self.waiting():
            owner_file = path.with_suffix(".jsonl")
            claimed = path.with_suffix(f".replaying-{os.getpid()}")
            try:
                os.rename(path, claimed)
            except FileNotFoundError:  # another process took it
                continue
            lines = claimed.read_text().splitlines()
            try:
                done += self._replay_file(lines, write, refused, ready)
            except _Refused as stop:
                self._put_back(owner_file, lines[stop.at:], stop.error)
                claimed.unlink()
                done += stop.done
                break
            except _NotReady as wait:
                done += wait.done
                self._put_back(owner_file, lines[wait.at:], "waiting for the run's row")
            claimed.unlink()
        with _lock:
            self.pending = self._mine_in_flight()
        if done:
            log.info("wrote %d run-log change(s) kept while the database was away", done)
        return done

    def _replay_file(self, lines, write, refused, ready):
        done = 0
        for n, line in enumerate(lines):
            entry = json.loads(line, object_hook=_decode)
            steps = [(name, values) for name, values in entry["steps"]]
            try:
                if not ready(steps, time.time() - entry["at"]):
                    raise _NotReady(n, done)
                write(steps)
                done += 1
            except _NotReady:
                raise
            except Exception as exc:
                if refused(exc):
                    raise _Refused(n, done, exc) from exc
                log.error("dropping a kept run-log change that cannot be written (%s): %s", exc, line)
        return done

    def _put_back(self, path, lines, exc):
        with _lock, open(path, "a+") as fh:  # the owner may have appended meanwhile: ours go first next time
            fcntl.flock(fh, fcntl.LOCK_EX)
            fh.seek(0)
            existing = fh.read()
            fh.seek(0)
            fh.truncate()
            fh.write("\n".join(lines) + "\n" + existing)
        log.warning("%d run-log change(s) kept for later: %s", len(lines), exc)
