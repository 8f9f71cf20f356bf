"""When a schedule's runs fall due, and which to send after a time no Beat ran: pure functions of stored times.

Every Beat computes the same due times from what the database holds (the schedule's anchor and its last
claimed run), so their claims on a run collide on the unique (schedule, due time) and one of them sends it.
All times here are aware UTC datetimes.
"""
import math
from collections import deque
from dataclasses import dataclass, field
from datetime import timezone

from celery.schedules import crontab

CATCH_UP_MAX = 100       # "all" sends at most this many missed runs (the newest): a month away is not a flood
ENUMERATE_MAX = 100_000  # due times walked at most in one look (a minutely crontab after two months away)


def next_after(schedule, base, t):
    """The first due time strictly after t, counting from base (a crontab's matches; base + k * interval)."""
    if isinstance(schedule, crontab):
        start, delta, _ = schedule.remaining_delta(max(t, base))
        return (start + delta).astimezone(timezone.utc)
    step = schedule.run_every
    if t < base:
        return base + step
    return base + (math.floor((t - base) / step) + 1) * step


def between(schedule, base, now, keep=CATCH_UP_MAX):
    """The newest `keep` due times in (base, now], oldest first, and how many there were in all."""
    if not isinstance(schedule, crontab):
        step = schedule.run_every
        count = max(0, math.floor((now - base) / step))
        return [base + k * step for k in range(max(1, count - keep + 1), count + 1)], count
    found, count, t = deque(maxlen=keep), 0, base
    while count < ENUMERATE_MAX:
        t = next_after(schedule, base, t)
        if t > now:
            break
        found.append(t)
        count += 1
    return list(found), count


@dataclass
class Plan:
    """What one look at a schedule decides: runs to send now, a missed run to mark skipped, runs to wait for."""

    send: list = field(default_factory=list)
    skip: object = None
    dropped: int = 0  # missed runs beyond CATCH_UP_MAX that "all" does not send


def plan(schedule, policy, base, now, started_at, grace_s):
    """Runs due in (base, now]. A run is on time when it fell due since this Beat started and less than the grace
    ago (a live Beat claims a run within milliseconds): it is sent. The rest were missed (no Beat of ours ran,
    or none could claim them: the database was away) and follow the schedule's policy: `skip` sends none (the
    newest is marked skipped once older than the grace, so a Beat that was up still sends it), `once` sends
    the newest for all of them (Celery's own way), `all` sends each, at most CATCH_UP_MAX."""
    dues, count = between(schedule, base, now)
    missed = [d for d in dues if d < started_at or (now - d).total_seconds() > grace_s]
    out = Plan(send=dues[len(missed):])
    if not missed:
        return out
    if policy == "skip":
        old = [d for d in missed if (now - d).total_seconds() > grace_s]
        out.skip = old[-1] if old else None
    elif policy == "all":
        out.send = missed + out.send
        out.dropped = count - len(dues)
    else:
        out.send = [missed[-1]] + out.send
    return out
