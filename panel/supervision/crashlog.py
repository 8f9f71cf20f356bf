"""What a dead worker's log says it was holding: the message it received last and never finished.

Celery's main process logs "Task name[id] received" before it hands a message to the pool, and a line with
the same id when the task ends; a message that kills the main process (a RecursionError while pickling it for
the pool, a C extension's crash) leaves a "received" with no ending, often followed by "Unrecoverable error".

Errors of the remote-control mailbox ("pidbox command error", an unknown task in a rate or time limit) are
logged and survived by the worker, whoever sent the command (the panel, say): they never count as a cause.
"""
import re
from dataclasses import dataclass

RECEIVED = re.compile(r"Task (?P<task>[^\s\[]+)\[(?P<id>[^\]\s]+)\] received")
ENDED = re.compile(r"\[(?P<id>[^\]\s]+)\] (?:succeeded|raised|retry|ignored|rejected|revoked)|"
                   r"Discarding revoked task: [^\s\[]+\[(?P<revoked>[^\]\s]+)\]")
STARTED = re.compile(r"\] Connected to |celery@\S+ v\d|\S+@\S+ v\d+\.\d+")  # each worker process's first lines
FATAL = re.compile(r"Unrecoverable error|CRITICAL/MainProcess|Traceback \(most recent call last\)")
SURVIVED = re.compile(r"pidbox command error|Control command error|(?:Rate|Change time) limit attempt for unknown task")
TRACEBACK_BODY = re.compile(r"^(?:\s|Traceback \(most recent call last\)|During handling of the above|The above "
                            r"exception|$)")


@dataclass(frozen=True)
class Death:
    """What a dead worker held: the messages it received and never finished (in the order received), and the
    log's own words for the death."""

    held: tuple  # ((task id, task type), ...)
    evidence: str


def last_life(text):
    """The lines written by the newest worker process in a log that several processes appended to."""
    lines = text.splitlines()
    starts = [n for n, line in enumerate(lines) if STARTED.search(line)]
    return lines[starts[-1]:] if starts else lines


def death(text):
    """The messages the last worker received and never finished, and why it died; None when it held none.

    Every one is a suspect: a message that kills the main process is not always the last "received" line (on
    AMQP the worker logs the messages already in its buffer before the error reaches the log).
    """
    lines = last_life(text)
    ended = {m.group("id") or m.group("revoked") for line in lines for m in ENDED.finditer(line)}
    held = {}
    for line in lines:
        if (m := RECEIVED.search(line)) and m.group("id") not in ended:
            held.setdefault(m.group("id"), m.group("task"))
    if not held:
        return None
    first_held = next(n for n, line in enumerate(lines) if (m := RECEIVED.search(line)) and m.group("id") in held)
    lines = _without_survived(lines[first_held:])  # what came before the messages held cannot be their doing
    fatal = next((n for n, line in enumerate(lines) if FATAL.search(line)), len(lines))
    first = lines[fatal].strip() if fatal < len(lines) else ""
    evidence = _error_line(lines[fatal:]) or first or "the worker exited holding these messages, unfinished"
    return Death(tuple(held.items()), evidence[:500])


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
