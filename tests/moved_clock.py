"""The security room's clock (panel/security/clock.py), moved by a test instead of sleeping."""
from datetime import timedelta

from models import utcnow
from panel.security import clock


class MovedClock:
    """Stands still until advanced; throttles, the audit log and sessions all read it."""

    def __init__(self, monkeypatch):
        self.at = utcnow()
        monkeypatch.setattr(clock, "now", self.now)

    def now(self):
        return self.at

    def advance(self, seconds):
        self.at += timedelta(seconds=seconds)
