"""A long control action in progress (a stop waiting for running tasks, a start), for every panel process to show.

Kept in a small file under the instance's run/ folder, not in memory: the status call may be answered by another
process (gunicorn) than the one stopping. A record past its deadline, or of a process that is gone, is ignored.
"""
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

import psutil

SLACK_S = 30.0  # a start or stop that outlives its own deadline by this much has died: its record is stale


def _path(instance):
    return Path(instance) / "run" / "progress.json"


@contextmanager
def doing(instance, action, expected_s, running_tasks=None):
    """Say `action` ("stopping", "starting") is under way until the block ends; grace_left counts down from
    expected_s."""
    record = {"action": action, "running_tasks": running_tasks, "pid": os.getpid(),
              "ends_at": time.time() + expected_s, "since": time.time()}
    path = _path(instance)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)  # readers see the old record or the new one, never half of one
    except OSError:
        pass  # progress is a courtesy: the action itself goes on
    try:
        yield
    finally:
        _clear(path, record["since"])


def _clear(path, since):
    """Remove our own record only (another action may have written its own since)."""
    try:
        if json.loads(path.read_text()).get("since") == since:
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def current(instance):
    """{"action", "running_tasks", "grace_left_s"} of the action under way, or None."""
    try:
        record = json.loads(_path(instance).read_text())
    except (OSError, ValueError):
        return None
    now = time.time()
    if (not isinstance(record, dict) or now > record.get("ends_at", 0) + SLACK_S
            or not psutil.pid_exists(record.get("pid", 0))):
        return None
    return {"action": record["action"], "running_tasks": record.get("running_tasks"),
            "grace_left_s": max(0, round(record["ends_at"] - now))}
