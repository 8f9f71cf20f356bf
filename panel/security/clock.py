"""The security room's clock: throttles, audit windows and session timeouts read it, so a test can move it."""
from models import utcnow


def now():
    """Naive UTC, as the database keeps it."""
    return utcnow()
