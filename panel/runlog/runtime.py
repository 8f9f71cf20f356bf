"""A run's runtime (finished minus started, in seconds), kept in runtime_s so that "slowest first" walks an index.

Every writer that ends a run in SQL sets runtime_s with `seconds` from the same end time it writes to
finished_at; a writer that holds the row in Python uses `between`. A run that never started has none.
"""
from sqlalchemy import DateTime, extract, func, literal


def seconds(started, finished, dialect_name):
    """SQL for the seconds between two timestamps (NULL when either is); `finished` may be a Python datetime."""
    if not hasattr(finished, "self_group"):
        finished = literal(finished, DateTime)
    if dialect_name == "postgresql":
        return extract("epoch", finished - started)
    return (func.julianday(finished) - func.julianday(started)) * 86400.0


def between(started, finished):
    """The same in Python, for a row held as values."""
    return (finished - started).total_seconds() if started and finished else None
