"""Figures over the run log: runs per minute, runs by state, the run-duration histogram."""
import threading
from datetime import timedelta

from sqlalchemy import case, func, select

from models import Run, db, iso, utcnow
from panel.database import reader

CHART_MINUTES = 60
# Upper bounds in seconds, Prometheus style; the last bucket (+Inf) is every finished run.
DURATION_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800)
LATE_COMMIT_S = 5  # a run finished this long ago may still be committing: look back, skip ids already counted


def _minute(column, dialect):
    """A timestamp cut to its minute, as text both databases produce the same way."""
    if dialect == "postgresql":
        return func.to_char(func.date_trunc("minute", column), "YYYY-MM-DD\"T\"HH24:MI")
    return func.strftime("%Y-%m-%dT%H:%M", column)


def _seconds_between(start, end, dialect):
    if dialect == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


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
    """How many runs the log holds in each Celery state (an index-only count)."""
    with reader(db.engine).connect() as conn:
        return dict(conn.execute(select(Run.state, func.count()).group_by(Run.state)).all())


class DurationHistogram:
    """Cumulative run durations, counted once from the log and then only from newly finished runs."""

    def __init__(self, buckets=DURATION_BUCKETS_S):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.total_s = 0.0
        self.mark = None  # finished_at of the newest run counted
        self.recent = {}  # id -> finished_at of runs inside the late-commit window, so none counts twice
        self.lock = threading.Lock()

    def _add(self, seconds):
        seconds = max(seconds, 0.0)
        for i, bound in enumerate(self.buckets):
            if seconds <= bound:
                self.counts[i] += 1
                break
        else:
            self.counts[-1] += 1
        self.total_s += seconds

    def _count_all(self, conn):
        """The first look: the whole log aggregated by the database, not read row by row."""
        seconds = _seconds_between(Run.started_at, Run.finished_at, conn.dialect.name)
        columns, lower = [], None
        for upper in self.buckets:  # bucket i holds (previous bound, bound]
            inside = seconds <= upper if lower is None else (seconds > lower) & (seconds <= upper)
            columns.append(func.sum(case((inside, 1), else_=0)))
            lower = upper
        row = conn.execute(select(func.count(), func.coalesce(func.sum(seconds), 0.0), func.max(Run.finished_at),
                                  *columns).where(Run.finished_at.is_not(None), Run.started_at.is_not(None))).one()
        total, self.total_s, self.mark = row[0], float(row[1]), row[2]
        self.counts = [int(n or 0) for n in row[3:]]
        self.counts.append(total - sum(self.counts))
        if self.mark is not None:
            self.recent = dict(conn.execute(select(Run.id, Run.finished_at).where(
                Run.finished_at >= self.mark - timedelta(seconds=LATE_COMMIT_S))).all())

    def refresh(self):
        """Count runs finished since the last look; returns a snapshot (cumulative buckets, count, sum)."""
        with self.lock, reader(db.engine).connect() as conn:
            if self.mark is None and not any(self.counts):
                self._count_all(conn)
            query = select(Run.id, Run.started_at, Run.finished_at).where(
                Run.finished_at.is_not(None), Run.started_at.is_not(None))
            if self.mark is not None:
                query = query.where(Run.finished_at >= self.mark - timedelta(seconds=LATE_COMMIT_S))
            rows = conn.execute(query).all()
            for run_id, started, finished in rows:
                if run_id in self.recent:
                    continue
                self._add((finished - started).total_seconds())
                self.mark = finished if self.mark is None or finished > self.mark else self.mark
                self.recent[run_id] = finished
            horizon = (self.mark or utcnow()) - timedelta(seconds=LATE_COMMIT_S)
            self.recent = {k: v for k, v in self.recent.items() if v >= horizon}
            return self.snapshot()

    def snapshot(self):
        cumulative, running = [], 0
        for bound, n in zip(self.buckets + (float("inf"),), self.counts):
            running += n
            cumulative.append((bound, running))
        return cumulative, running, self.total_s
