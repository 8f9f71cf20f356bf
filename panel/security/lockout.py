"""Login throttling that an attacker cannot turn against a user.

Counted from the audit log's failed logins (wrong password, unknown or disabled user) in LOGIN_WINDOW_S (900 s):

- per account and address: LOGIN_MAX_FAILURES_PER_ACCOUNT_ADDRESS (5) lock that account for that address only,
  until the oldest of them leaves the window; the right password from any other address still works;
- per address: LOGIN_MAX_FAILURES_PER_ADDRESS (20), whatever the accounts, lock that address (password spraying);
- per account, from every address: from LOGIN_SLOW_AFTER_FAILURES_PER_ACCOUNT (10) on, an attempt must come a delay
  after the account's last failure: 1 s, doubling with each further failure, at most LOGIN_SLOW_MAX_DELAY_S (60 s).
  It slows a guesser with many addresses to about one guess a minute and never locks the account; an address the
  account logged in from in the last 30 days is not slowed at all.

Refused attempts are audited as "denied" and do not count: hammering a lock neither lengthens it nor slows anyone.
"""
import math
from dataclasses import dataclass
from datetime import timedelta

from models import utcnow
from panel.security import audit

KNOWN_ADDRESS_S = 30 * 86400
LOCKOUT, SLOWDOWN = "login.lockout", "login.slowdown"


@dataclass(frozen=True)
class Refusal:
    message: str      # for the person at the login form
    retry_after: int  # seconds, for the Retry-After header
    reason: str       # for the audit log


def _seconds_until(moment):
    return max(1, math.ceil((moment - utcnow()).total_seconds()))


def _in_words(seconds):
    return f"{seconds} seconds" if seconds < 120 else f"{math.ceil(seconds / 60)} minutes"


def _lock_ends(cfg, limit, actor=None, source=None):
    """When the lock these failures make ends (the limit-th newest leaves the window), or None: no lock."""
    times = audit.failure_times(cfg["LOGIN_WINDOW_S"], limit, actor, source)
    return times[limit - 1] + timedelta(seconds=cfg["LOGIN_WINDOW_S"]) if len(times) >= limit else None


def slow_delay(cfg, failures):
    """The account-wide delay after `failures` failed logins in the window (0: not slowed)."""
    over = failures - cfg["LOGIN_SLOW_AFTER_FAILURES_PER_ACCOUNT"]
    return 0.0 if over < 0 else min(2.0 ** min(over, 30), float(cfg["LOGIN_SLOW_MAX_DELAY_S"]))


def _slowdown(cfg, username, address):
    window = cfg["LOGIN_WINDOW_S"]
    failures = audit.recent_failures(window, actor=username)
    delay = slow_delay(cfg, failures)
    if not delay:
        return None
    until = audit.failure_times(window, 1, actor=username)[0] + timedelta(seconds=delay)
    if until <= utcnow() or audit.succeeded_lately(KNOWN_ADDRESS_S, username, address):
        return None
    wait = _seconds_until(until)
    return Refusal(f"Many failed logins as {username} lately, from elsewhere; try again in {_in_words(wait)}.",
                   wait, f"slowed: {failures} failed logins as {username} in {window:.0f} s, {delay:.0f} s apart")


def refusal(cfg, username, address):
    """Why this attempt is not even checked (a Refusal), or None: the password may be tried."""
    until = _lock_ends(cfg, cfg["LOGIN_MAX_FAILURES_PER_ACCOUNT_ADDRESS"], username, address)
    if until:
        wait = _seconds_until(until)
        return Refusal(f"Too many failed logins as {username} from your address; try again in {_in_words(wait)}.",
                       wait, "locked: too many failed logins as this account from this address")
    until = _lock_ends(cfg, cfg["LOGIN_MAX_FAILURES_PER_ADDRESS"], source=address)
    if until:
        wait = _seconds_until(until)
        return Refusal(f"Too many failed logins from your address; try again in {_in_words(wait)}.",
                       wait, "locked: too many failed logins from this address")
    return _slowdown(cfg, username, address)


def failed(cfg, username, address, detail):
    """Record a failed login, and a lockout or slowdown it starts (once, when its count is reached)."""
    audit.record(username, address, audit.LOGIN, username, "failure", detail)
    window = cfg["LOGIN_WINDOW_S"]
    pair, per_address = cfg["LOGIN_MAX_FAILURES_PER_ACCOUNT_ADDRESS"], cfg["LOGIN_MAX_FAILURES_PER_ADDRESS"]
    slow_after = cfg["LOGIN_SLOW_AFTER_FAILURES_PER_ACCOUNT"]
    if audit.recent_failures(window, actor=username, source=address) == pair:
        audit.record(username, address, LOCKOUT, username, "denied",
                     f"{pair} failed logins as {username} from {address} in {window:.0f} s: that address may not log "
                     f"in as {username} for up to {window:.0f} s; other addresses still may")
    if audit.recent_failures(window, source=address) == per_address:
        audit.record(username, address, LOCKOUT, address, "denied",
                     f"{per_address} failed logins from {address} in {window:.0f} s, any account: that address may "
                     f"not log in for up to {window:.0f} s")
    if audit.recent_failures(window, actor=username) == slow_after:
        audit.record(username, address, SLOWDOWN, username, "denied",
                     f"{slow_after} failed logins as {username} in {window:.0f} s from any address: each further "
                     f"attempt waits 1 s after the last failure, doubling, at most "
                     f"{cfg['LOGIN_SLOW_MAX_DELAY_S']:.0f} s; never locked")
