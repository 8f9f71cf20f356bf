"""What a dead worker's log says: the messages it held, in the order received, and whether a message killed it.

Celery's main process logs "Task name[id] received" and hands due messages to the pool one at a time, in the order
received, pickling each as it goes (worker.py `_process_task` -> asynpool `send_job`); a message that kills the main
process there (a RecursionError while pickling it, a C extension's crash) is the first of the due messages it held
that never reached a pool process. The log's own order around the fatal line cannot say which: on AMQP the main
process logs messages of the same delivery burst before and after its "Unrecoverable error". Which held messages
were due (not waiting for an ETA or a retry's countdown) and which started is known to the runs, not to the log:
panel/supervision/quarantine.py asks them.

Ids and task names may hold any character Celery accepts (spaces included): a line is read by its fixed words
("Task ", "] received"), never by a pattern that stops at whitespace. Errors of the remote-control mailbox
("pidbox command error", an unknown task in a rate or time limit) and a task's own failure are logged and
survived by the worker, whoever caused them (the panel, say): they are never the cause of a death.
"""
import re
import time
from dataclasses import dataclass

RECEIVED = re.compile(r"\] Task (?P<task>[^\[]+?)\[(?P<id>.+)\] received\s*$")
ENDED = re.compile(r"\] Task [^\[]+?\[(?P<id>.+?)\] (?:succeeded in |raised |retry: |ignored|rejected|revoked|"
                   r"INTERNAL ERROR)|Discarding revoked task: [^\[]+?\[(?P<revoked>.+)\]\s*$")
STARTED = re.compile(r"\] Connected to |celery@\S+ v\d|\S+@\S+ v\d+\.\d+")  # each worker process's first lines
FATAL = re.compile(r"Unrecoverable error|CRITICAL/MainProcess")  # the main process itself giving up
SURVIVED = re.compile(r"pidbox command error|Control command error|(?:Rate|Change time) limit attempt for unknown task")
TRACEBACK_BODY = re.compile(r"^(?:\s|Traceback \(most recent call last\)|During handling of the above|The above "
                            r"exception|$)")
STAMP = re.compile(r"^\[(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(?P<ms>\d{3})")  # Celery's log line, local time
CRASH_SIGNALS = {4, 6, 7, 8, 11}  # SIGILL, SIGABRT, SIGBUS, SIGFPE, SIGSEGV: the process crashed, nobody killed it


@dataclass(frozen=True)
class Death:
    """What a dead worker held (received and never finished, in the order received), whether its end shows a
    message killed it (the main process gave up, or crashed on a signal), and the log's words for it."""

    held: tuple  # ((task id, task type), ...)
    by_message: bool  # False: killed (SIGKILL, SIGTERM) or exited with no fatal error: no message is to blame
    evidence: str


def last_life(text):
    """The lines written by the newest worker process in a log that several processes appended to."""
    lines = text.splitlines()
    starts = [n for n, line in enumerate(lines) if STARTED.search(line)]
    return lines[starts[-1]:] if starts else lines


def before(text, started):
    """The log less the life of a process started at `started` (epoch seconds, whole: Supervisor's) that Supervisor
    appended to it: the lines up to the first start-up line after the last line stamped before that second (lines
    of that very second may be the old life's last ones; a new life begins with its start-up lines)."""
    lines = text.splitlines()
    older = [n for n, line in enumerate(lines) if (at := _stamp(line)) is not None and at < started]
    if not older:
        return text
    end = next((n for n in range(older[-1] + 1, len(lines)) if STARTED.search(lines[n])), len(lines))
    return "\n".join(lines[:end])


def _stamp(line):
    m = STAMP.match(line)
    if m is None:
        return None
    return time.mktime(time.strptime(m.group("at"), "%Y-%m-%d %H:%M:%S")) + int(m.group("ms")) / 1000


def death(text, exit_status=None):
    """What the last worker held, and whether a message killed it; None when it held none.

    `exit_status`: how the process ended when known (negative: the signal); a crash signal with no fatal line
    in the log still points at a message, a SIGKILL or a clean exit at none.
    """
    lines = _without_survived(last_life(text))
    ended = {m.group("id") or m.group("revoked") for line in lines for m in ENDED.finditer(line)}
    held = {}
    for line in lines:
        if (m := RECEIVED.search(line)) and m.group("id") not in ended:
            held.setdefault(m.group("id"), m.group("task").strip())
    if not held:
        return None
    fatal = next((n for n, line in enumerate(lines) if FATAL.search(line)), None)
    crashed = exit_status is not None and -exit_status in CRASH_SIGNALS
    evidence = (_error_line(lines[fatal:]) or lines[fatal].strip() if fatal is not None
                else f"the worker crashed (signal {-exit_status})" if crashed
                else "the worker exited holding these messages, unfinished")
    return Death(tuple(held.items()), fatal is not None or crashed, evidence[:500])


def _without_survived(lines):
    """The lines less every error the worker logged and survived (a remote-control command's), traceback too."""
    kept, skipping = [], False
    for line in lines:
        if SURVIVED.search(line):
            skipping = True
            continue
        if skipping and TRACEBACK_BODY.match(line):
            continue
        if skipping and re.match(r"^[A-Za-z_][\w.]*(?::|$)", line) and not line.startswith("["):
            skipping = False  # the exception line that ends the traceback
            continue
        skipping = False
        kept.append(line)
    return kept


def _error_line(lines):
    """The exception a traceback ends with ("RecursionError: maximum recursion depth exceeded ...")."""
    for line in lines:
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b.*:", line):
            return line.strip()
    return ""
