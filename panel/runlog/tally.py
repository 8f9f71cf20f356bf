"""Runs by state and the duration histogram, kept as runs are written, so a scrape costs the same at 10M runs as at 10.

The database keeps them itself, whichever writer writes a run (worker, event recorder, read-back, clean-up, an
operator's SQL): a trigger on task_logs appends a signed change to run_tallies for each run added, moved to another
state or deleted, and for each run whose runtime becomes known. Appending never waits on another writer (one hot
summary row would serialise every PostgreSQL writer behind it); the background folds the changes into one row per
figure every FOLD_S. A figure is the sum of its rows, folded or not.

States follow the log (a deleted run leaves its state's count). The histogram is a Prometheus counter: a run is
observed once, when its runtime first becomes known; deleting it later takes nothing away, and a run sent again
and ended again is observed again (it ran twice).
"""
import logging
import threading

from sqlalchemy import event

from models import db
from panel.database import reader

log = logging.getLogger("panel.tally")

TABLE = "run_tallies"
# Upper bounds in seconds, Prometheus style; the last bucket (+Inf) is every finished run.
DURATION_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800)
FOLD_S = 5.0
FOLD_AT = 200  # changes beyond one row per figure before a fold is worth its write: an idle panel writes nothing


def label(bound):
    """A bucket's label as stored and as Prometheus prints it."""
    return "+Inf" if bound == float("inf") else format(bound, "g")


def _bucket(x):
    whens = " ".join(f"WHEN {x} <= {bound!r} THEN '{label(bound)}'" for bound in DURATION_BUCKETS_S)
    return f"CASE {whens} ELSE '+Inf' END"


def _clamp(x, dialect):
    """A runtime below zero (clocks of two hosts) counts as zero, as Prometheus wants no negative observation."""
    return f"{'greatest' if dialect == 'postgresql' else 'max'}({x}, 0.0)"


_INTO = f"INSERT INTO {TABLE} (family, label, n, seconds)"

SQLITE_DDL = (
    f"CREATE TRIGGER IF NOT EXISTS task_logs_tally_insert AFTER INSERT ON task_logs BEGIN "
    f"{_INTO} VALUES ('state', new.state, 1, 0); "
    f"{_INTO} SELECT 'duration', {_bucket('new.runtime_s')}, 1, {_clamp('new.runtime_s', 'sqlite')} "
    f"WHERE new.runtime_s IS NOT NULL; END",
    f"CREATE TRIGGER IF NOT EXISTS task_logs_tally_delete AFTER DELETE ON task_logs BEGIN "
    f"{_INTO} VALUES ('state', old.state, -1, 0); END",
    f"CREATE TRIGGER IF NOT EXISTS task_logs_tally_state AFTER UPDATE OF state ON task_logs "
    f"WHEN old.state IS NOT new.state BEGIN {_INTO} VALUES ('state', old.state, -1, 0), ('state', new.state, 1, 0); "
    f"END",
    f"CREATE TRIGGER IF NOT EXISTS task_logs_tally_runtime AFTER UPDATE OF runtime_s ON task_logs "
    f"WHEN old.runtime_s IS NULL AND new.runtime_s IS NOT NULL BEGIN "
    f"{_INTO} VALUES ('duration', {_bucket('new.runtime_s')}, 1, {_clamp('new.runtime_s', 'sqlite')}); END",
)


# PostgreSQL: a row trigger for inserts and updates (its WHEN skips an update that moves neither figure without
# calling the function; the writers send one statement a run, and a statement trigger's transition tables cost
# them more: 5,250 -> 6,050 events/s written at 20,000 runs, 7,300 with no trigger), a statement trigger over the
# deleted rows for deletes (a clean-up deletes thousands in one statement: one aggregated change per state).
_NEW_DURATION = f"('duration', {_bucket('NEW.runtime_s')}, 1, {_clamp('NEW.runtime_s', 'postgresql')})"
PG_ROW_FUNCTION = f"""CREATE OR REPLACE FUNCTION run_tallies_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    {_INTO} VALUES ('state', NEW.state, 1, 0);
    IF NEW.runtime_s IS NOT NULL THEN {_INTO} VALUES {_NEW_DURATION}; END IF;
  ELSE
    IF OLD.state IS DISTINCT FROM NEW.state THEN
      {_INTO} VALUES ('state', OLD.state, -1, 0), ('state', NEW.state, 1, 0);
    END IF;
    IF OLD.runtime_s IS NULL AND NEW.runtime_s IS NOT NULL THEN {_INTO} VALUES {_NEW_DURATION}; END IF;
  END IF;
  RETURN NULL;
END $$"""
PG_STATEMENT_FUNCTION = f"""CREATE OR REPLACE FUNCTION run_tallies_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    {_INTO} SELECT 'state', state, -count(*), 0 FROM gone GROUP BY state;
  ELSE
    DELETE FROM {TABLE} WHERE family = 'state';
  END IF;
  RETURN NULL;
END $$"""
_PG_TRIGGERS = {
    "insert": "AFTER INSERT ON task_logs FOR EACH ROW EXECUTE FUNCTION run_tallies_row()",
    "update": "AFTER UPDATE OF state, runtime_s ON task_logs FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state "
              "OR (OLD.runtime_s IS NULL AND NEW.runtime_s IS NOT NULL)) EXECUTE FUNCTION run_tallies_row()",
    "delete": "AFTER DELETE ON task_logs REFERENCING OLD TABLE AS gone FOR EACH STATEMENT "
              "EXECUTE FUNCTION run_tallies_gone()",
    "truncate": "AFTER TRUNCATE ON task_logs FOR EACH STATEMENT EXECUTE FUNCTION run_tallies_gone()"}
PG_FUNCTIONS = ("run_tallies_row", "run_tallies_gone")
PG_DDL = (PG_ROW_FUNCTION, PG_STATEMENT_FUNCTION) + tuple(
    stmt for name, when in _PG_TRIGGERS.items()
    for stmt in (f"DROP TRIGGER IF EXISTS task_logs_tally_{name} ON task_logs",
                 f"CREATE TRIGGER task_logs_tally_{name} {when}"))
DDL = {"sqlite": SQLITE_DDL, "postgresql": PG_DDL}


def recount_sql(dialect):
    """Statements that count the tally anew from the log (a migration, a bulk load with triggers off)."""
    lock = ("LOCK TABLE task_logs IN SHARE MODE",) if dialect == "postgresql" else ()  # no write slips between
    return lock + (
        f"DELETE FROM {TABLE}",
        f"{_INTO} SELECT 'state', state, count(*), 0 FROM task_logs GROUP BY state",
        f"{_INTO} SELECT 'duration', b, count(*), sum(s) FROM (SELECT {_bucket('runtime_s')} AS b, "
        f"{_clamp('runtime_s', dialect)} AS s FROM task_logs WHERE runtime_s IS NOT NULL) d GROUP BY b",
    )


def install(conn, recount=False):
    """Make the triggers on a connection's database (idempotent); `recount` fills the tally from the runs there."""
    for statement in DDL.get(conn.dialect.name, ()):
        conn.exec_driver_sql(statement)
    if recount:
        for statement in recount_sql(conn.dialect.name):
            conn.exec_driver_sql(statement)


@event.listens_for(db.metadata, "after_create")
def _on_create(target, connection, **_):
    """A fresh schema (create_all) gets the triggers the migration gives an existing one (both tables exist now)."""
    if {"task_logs", TABLE} <= set(target.tables):
        install(connection)


class Figures:
    """One read of the tally: runs by state and the cumulative duration buckets."""

    def __init__(self, rows):
        self.by_state, self.counts, self.total_s = {}, {}, 0.0
        for family, key, n, seconds in rows:
            if family == "state" and n:
                self.by_state[key] = int(n)
            elif family == "duration":
                self.counts[key] = self.counts.get(key, 0) + int(n)
                self.total_s += float(seconds or 0.0)

    def buckets(self):
        """[(upper bound, runs at or under it)], +Inf last; a label from other bounds counts under +Inf."""
        known = {label(b) for b in DURATION_BUCKETS_S}
        cumulative, running = [], 0
        for bound in DURATION_BUCKETS_S:
            running += self.counts.get(label(bound), 0)
            cumulative.append((bound, running))
        running += sum(n for key, n in self.counts.items() if key not in known)
        cumulative.append((float("inf"), running))
        return cumulative

    @property
    def count(self):
        return sum(self.counts.values())


def read(engine=None):
    """The figures now: a sum over the folded rows and the changes since (a few hundred rows at most, folded)."""
    with reader(engine or db.engine).connect() as conn:
        return Figures(conn.exec_driver_sql(
            f"SELECT family, label, sum(n), sum(seconds) FROM {TABLE} GROUP BY family, label").all())


def fold(engine=None):
    """Replace the changes with one row per figure; True when it did. Safe beside writers and another fold: on
    PostgreSQL what is deleted is exactly what is summed (one statement); SQLite has one writer at a time."""
    engine = engine or db.engine
    with reader(engine).connect() as conn:  # the look costs no write lock
        unfolded = f"SELECT count(*) - count(DISTINCT family || '|' || label) FROM {TABLE}"
        if conn.exec_driver_sql(unfolded).scalar() < FOLD_AT:
            return False
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(
                f"WITH gone AS (DELETE FROM {TABLE} RETURNING family, label, n, seconds) "
                f"{_INTO} SELECT family, label, sum(n), sum(seconds) FROM gone GROUP BY family, label "
                f"HAVING sum(n) <> 0 OR sum(seconds) <> 0")
            return True
        top = conn.exec_driver_sql(f"SELECT max(id) FROM {TABLE}").scalar()
        sums = conn.exec_driver_sql(f"SELECT family, label, sum(n), sum(seconds) FROM {TABLE} WHERE id <= ? "
                                    f"GROUP BY family, label", (top,)).all()
        conn.exec_driver_sql(f"DELETE FROM {TABLE} WHERE id <= ?", (top,))
        kept = [tuple(s) for s in sums if s[2] or s[3]]
        if kept:
            conn.exec_driver_sql(f"{_INTO} VALUES (?, ?, ?, ?)", kept)
        return True


def run(app, stop):
    """Fold every FOLD_S until stopped; a database that refuses is tried again next time."""
    with app.app_context():
        engine = db.engine
    while not stop.wait(FOLD_S):
        try:
            fold(engine)
        except Exception as exc:  # noqa: BLE001 - a locked or unreachable database must not end the loop
            log.warning("could not fold the run tally: %s", exc)


def start(app):
    """Start folding on a daemon thread; returns its stop event."""
    stop = threading.Event()
    threading.Thread(target=run, args=(app, stop), name="run-tally", daemon=True).start()
    return stop
