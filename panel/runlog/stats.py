"""Figures over the run log: runs per minute, and runs by state as the tally keeps them."""
from datetime import timedelta

from sqlalchemy import case, func, select

from models import Run, db, iso, utcnow
from panel.database import reader
from panel.runlog import tally

CHART_MINUTES = 60


def _minute(column, dialect):
    """A timestamp cut to its minute, as text both databases produce the same way."""
    if dialect == "postgresql":
        return func.to_char(func.date_trunc("minute", column), "YYYY-MM-DD\"T\"HH24:MI")
    return func.strftime("%Y-%m-%dT%H:%M", column)


def per_minute(minutes=CHART_MINUTES, now=None):
    """Succeeded and failed runs for each of the last `minutes` minutes, oldest first, gaps as zero."""
    now = (now or utcnow()).replace(second=0, microsecond=0)
    start = now - timedelta(minutes=minutes - 1)
    engine = reader(db.engine)
    bucket = _minute(Run.finished_at, engine.dialect.name)
    # One indexable term only (finished_at), so the planner walks the last hour and nothing else.
    query = (select(bucket, func.sum(case((Run.state == "SUCCESS", 1), else_=0)),
                    func.sum(case((Run.state == "FAILURE", 1), else_=0)))
             .where(Run.finished_at >= start).group_by(bucket))
    with engine.connect() as conn:
        counts = {m: (int(ok or 0), int(bad or 0)) for m, ok, bad in conn.execute(query)}
    series = []
    for i in range(minutes):
        at = start + timedelta(minutes=i)
        key = at.strftime("%Y-%m-%dT%H:%M")
        succeeded, failed = counts.get(key, (0, 0))
        series.append({"minute": iso(at, "minutes"), "succeeded": succeeded, "failed": failed})
    return series


def by_state():
    """How many runs the log holds in each Celery state (kept by the tally, not counted)."""
    return tally.read().by_state
