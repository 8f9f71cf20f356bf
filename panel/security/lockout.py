"""Login throttling that an attacker cannot turn against the real user.

Counted from the audit log's failed logins (wrong password, unknown or disabled user) in LOGIN_WINDOW_S (900 s).
An attempt comes from a client address (the peer's, or with TRUSTED_PROXY_HOPS the one the trusted proxies name)
and perhaps from a known device (devices.py: a browser that logged in as that user before). In this order:

- a known device: only its own failures as that user count; below LOGIN_MAX_FAILURES_PER_ACCOUNT_ADDRESS (5) it
  may always try, whatever others do; past it, it is a stranger (the rules below) until they leave the window;
- per account and address: 5 failures lock that account for that address only, until the oldest leaves the window;
- per address: LOGIN_MAX_FAILURES_PER_ADDRESS (20), whatever the accounts, lock that address (password spraying);
- per account, from every address: from LOGIN_SLOW_AFTER_FAILURES_PER_ACCOUNT (10) on, an address that itself
  failed as that account must wait after its own last failure: 1 s, doubling with each further failure of the
  account, at most LOGIN_SLOW_MAX_DELAY_S (60 s). An address that has not failed is never slowed, nor one the
  account logged in from in the last 30 days: the right password from a new address gets in at the first try
  however many failures others send, and the account is never locked.

Refused attempts are audited as "denied" and do not count: hammering a lock neither lengthens it nor slows anyone.
"""
import math
from dataclasses import dataclass
from datetime import timedelta

from panel.security import audit, clock, devices

KNOWN_ADDRESS_S = 30 * 86400
LOCKOUT, SLOWDOWN = "login.lockout", "login.slowdown"


@dataclass(frozen=True)
class Attempt:
    username: str
    address: str
    device: str | None = None  # the id of a known device (devices.py) for this username

    @property
    def target(self):
        return devices.target(self.username, self.device)


@dataclass(frozen=True)
class Refusal:
    message: str      # for the person at the login form
    retry_after: int  # seconds, for the Retry-After header
    reason: str       # for the audit log


def _seconds_until(moment):
    return max(1, math.ceil((moment - clock.now()).total_seconds()))


def _in_words(seconds):
    return f"{seconds} seconds" if seconds < 120 else f"{math.ceil(seconds / 60)} minutes"


def _lock_ends(cfg, limit, actor=None, source=None, target=None):
    """When the lock these failures make ends (the limit-th newest leaves the window), or None: no lock."""
    times = audit.failure_times(cfg["LOGIN_WINDOW_S"], limit, actor, source, target)
    return times[limit - 1] + timedelta(seconds=cfg["LOGIN_WINDOW_S"]) if len(times) >= limit else None


def slow_delay(cfg, failures):
    """The delay after `failures` failed logins of an account in the window (0: not slowed)."""
    over = failures - cfg["LOGIN_SLOW_AFTER_FAILURES_PER_ACCOUNT"]
    return 0.0 if over < 0 else min(2.0 ** min(over, 30), float(cfg["LOGIN_SLOW_MAX_DELAY_S"]))


def _slowdown(cfg, attempt):
    """An account under attack slows the addresses that failed as it, each from its own last failure."""
    window, username, address = cfg["LOGIN_WINDOW_S"], attempt.username, attempt.address
    failures = audit.recent_failures(window, actor=username)
    delay = slow_delay(cfg, failures)
    own = audit.failure_times(window, 1, actor=username, source=address) if delay else []
    if not own:
        return None
    until = own[0] + timedelta(seconds=delay)
    if until <= clock.now() or audit.succeeded_lately(KNOWN_ADDRESS_S, username, address):
        return None
    wait = _seconds_until(until)
    return Refusal(f"Many failed logins as {username} lately, one from your address; try again in "
                   f"{_in_words(wait)}.", wait,
                   f"slowed: {failures} failed logins as {username} in {window:.0f} s; this address failed too, "
                   f"so it waits {delay:.0f} s after its last failure")


def refusal(cfg, attempt):
    """Why this attempt is not even checked (a Refusal), or None: the password may be tried."""
    pair = cfg["LOGIN_MAX_FAILURES_PER_ACCOUNT_ADDRESS"]
    if attempt.device and not _lock_ends(cfg, pair, attempt.username, target=attempt.target):
        return None  # a known device is counted on its own: nothing others do holds it up
    until = _lock_ends(cfg, pair, attempt.username, attempt.address)
    if until:
        wait = _seconds_until(until)
        return Refusal(f"Too many failed logins as {attempt.username} from your address; try again in "
                       f"{_in_words(wait)}.", wait, "locked: too many failed logins as this account from this address")
    until = _lock_ends(cfg, cfg["LOGIN_MAX_FAILURES_PER_ADDRESS"], source=attempt.address)
    if until:
        wait = _seconds_until(until)
        return Refusal(f"Too many failed logins from your address; try again in {_in_words(wait)}.",
                       wait, "locked: too many failed logins from this address")
    return _slowdown(cfg, attempt)


def failed(cfg, attempt, detail):
    """Record a failed login, and a lockout or slowdown it starts (once, when its count is reached)."""
    username, address = attempt.username, attempt.address
    audit.record(username, address, audit.LOGIN, attempt.target, "failure", detail)
    window = cfg["LOGIN_WINDOW_S"]
    pair, per_address = cfg["LOGIN_MAX_FAILURES_PER_ACCOUNT_ADDRESS"], cfg["LOGIN_MAX_FAILURES_PER_ADDRESS"]
    slow_after = cfg["LOGIN_SLOW_AFTER_FAILURES_PER_ACCOUNT"]
    if attempt.device and audit.recent_failures(window, actor=username, target=attempt.target) == pair:
        audit.record(username, address, LOCKOUT, attempt.target, "denied",
                     f"{pair} failed logins as {username} from known device {attempt.device} in {window:.0f} s: it "
                     f"is treated as an unknown browser for up to {window:.0f} s")
    if audit.recent_failures(window, actor=username, source=address) == pair:
        audit.record(username, address, LOCKOUT, username, "denied",
                     f"{pair} failed logins as {username} from {address} in {window:.0f} s: that address may not log "
                     f"in as {username} for up to {window:.0f} s; other addresses and known devices still may")
    if audit.recent_failures(window, source=address) == per_address:
        audit.record(username, address, LOCKOUT, address, "denied",
                     f"{per_address} failed logins from {address} in {window:.0f} s, any account: that address may "
                     f"not log in for up to {window:.0f} s, except from a known device")
    if audit.recent_failures(window, actor=username) == slow_after:
        audit.record(username, address, SLOWDOWN, username, "denied",
                     f"{slow_after} failed logins as {username} in {window:.0f} s from any address: each address that "
                     f"failed waits 1 s after its last failure, doubling, at most "
                     f"{cfg['LOGIN_SLOW_MAX_DELAY_S']:.0f} s; new addresses are not slowed; never locked")
