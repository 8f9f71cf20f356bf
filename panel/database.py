"""The database seam: engine options, SQLite pragmas, a fresh pool after fork, small writes off the request, and the
index text search goes through."""
import json
import logging
import threading

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from models import Run, db

log = logging.getLogger("panel.database")

SQLITE_BUSY_TIMEOUT_MS = 10_000
PG_CONNECT_TIMEOUT_S = 5


IMMEDIATE = "sqlite_begin_immediate"


def json_text(value):
    """JSON columns as their text: non-ASCII kept as it is (so "café" in a run's args is found by a search)."""
    return json.dumps(value, ensure_ascii=False)


def engine_options(uri):
    """Options that make each backend safe for several writer processes."""
    if uri.startswith("sqlite"):
        # ORM sessions are units of work that may write after reading: they take the write lock up
        # front, because a deferred reader that later writes gets SQLITE_BUSY at once, not after a wait.
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
                "execution_options": {IMMEDIATE: True}, "json_serializer": json_text}
    if uri.startswith("postgresql"):
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": PG_CONNECT_TIMEOUT_S},
                "json_serializer": json_text}
    return {"pool_pre_ping": True, "json_serializer": json_text}


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_conn, _record):
    """WAL lets readers run beside one writer; we take transactions into our own hands."""
    if type(dbapi_conn).__module__.split(".")[0] not in ("sqlite3", "pysqlite2"):
        return
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    # Each write by another process empties this connection's page cache; mapped pages come back cheaply.
    cur.execute("PRAGMA mmap_size=268435456")
    cur.close()


@event.listens_for(Engine, "begin")
def _sqlite_begin(conn):
    """BEGIN IMMEDIATE for units of work; a plain (deferred) BEGIN for read-only pollers."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(IMMEDIATE) else "BEGIN")


def unmapped_engine(uri):
    """An engine of its own for a writer that reads across the whole run log for as long as the panel lives (the
    event recorder): on SQLite its reads go through SQLite's small page cache instead of the file's mmap, whose
    touched pages would count in the panel's RSS as the log grows."""
    engine = create_engine(uri, **engine_options(uri))
    if uri.startswith("sqlite"):
        event.listen(engine, "connect", lambda dbapi_conn, _record: dbapi_conn.execute("PRAGMA mmap_size=0"))
    return engine


def reader(engine):
    """The engine for read-only polling: deferred transactions, which never block a writer in WAL."""
    return engine.execution_options(**{IMMEDIATE: False})


def dispose_after_fork(app):
    """Drop pooled connections inherited across fork; each process opens its own."""
    with app.app_context():
        db.engine.dispose(close=False)


def write_aside(engine, statement, what):
    """One small bookkeeping write on its own thread: a locked database must not hold up a poll; a failure is logged."""
    def write():
        try:
            with engine.begin() as conn:
                conn.execute(statement)
        except SQLAlchemyError as exc:
            log.warning("could not %s: %s", what, exc)
    threading.Thread(target=write, name=what, daemon=True).start()


# Text search over runs without a scan: an index made for substrings, kept by the database itself on every write
# of a run (whichever writer), so every writer keeps it. SQLite: FTS5 trigram tables over task_logs (their own
# content), kept by triggers; PostgreSQL: a pg_trgm GIN index over the same columns joined. `SEARCHED` is what
# panel/runlog/search.py asks of it; migrations/versions/a1c3e5f7b9d2 and c9e1f3a5b7d0 make the same for an existing
# database. SQLite keeps two tables, what a run was sent with and how it ended: an update re-indexes every column
# of its table, and a run's ending should index its result and error, not its arguments again. A row with nothing
# for a table (a run not ended yet) is not in it; no column sizes are kept (nothing ranks).
SEARCHED = ("celery_task_id", "args", "kwargs", "result", "error")
SEARCH_TABLE = "run_search"
SQLITE_SEARCH_TABLES = {SEARCH_TABLE: ("celery_task_id", "args", "kwargs"), "run_search_end": ("result", "error")}


def _sqlite_search_ddl(name, columns, trigger):
    """One FTS5 table over some of task_logs' columns and the three triggers that keep it."""
    cols = ", ".join(columns)
    new, old = (", ".join(f"{side}.{c}" for c in columns) for side in ("new", "old"))
    has_new, has_old = (" OR ".join(f"{side}.{c} IS NOT NULL" for c in columns) for side in ("new", "old"))
    forget = f"INSERT INTO {name}({name}, rowid, {cols}) SELECT 'delete', old.id, {old} WHERE {has_old};"
    index = f"INSERT INTO {name}(rowid, {cols}) SELECT new.id, {new} WHERE {has_new};"
    return (f"CREATE VIRTUAL TABLE IF NOT EXISTS {name} USING fts5({cols}, content='task_logs', content_rowid='id', "
            "tokenize='trigram', columnsize=0)",
            f"CREATE TRIGGER IF NOT EXISTS task_logs_{trigger}_insert AFTER INSERT ON task_logs BEGIN {index} END",
            f"CREATE TRIGGER IF NOT EXISTS task_logs_{trigger}_delete AFTER DELETE ON task_logs BEGIN {forget} END",
            f"CREATE TRIGGER IF NOT EXISTS task_logs_{trigger}_update AFTER UPDATE OF {cols} ON task_logs BEGIN "
            f"{forget} {index} END")


SQLITE_SEARCH_DDL = (_sqlite_search_ddl(SEARCH_TABLE, SQLITE_SEARCH_TABLES[SEARCH_TABLE], "search")
                     + _sqlite_search_ddl("run_search_end", SQLITE_SEARCH_TABLES["run_search_end"], "search_end"))
# One text per run, lowered as the scan's icontains lowers, the columns apart by a unit separator (json -> text and
# lower are immutable, as an index wants).
PG_SEPARATOR = chr(31)
PG_SEARCH_TEXT = "lower(" + " || chr(31) || ".join(f"coalesce({c}::text, '')" for c in SEARCHED) + ")"
PG_SEARCH_DDL = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    f"CREATE INDEX IF NOT EXISTS ix_task_logs_search ON task_logs USING gin (({PG_SEARCH_TEXT}) gin_trgm_ops)",
)


def in_schema(name, type_, _parents):
    """For Alembic: the search index (and the shadow tables FTS5 keeps for it) is made here, not by a model."""
    if type_ == "table":
        return not (name or "").startswith(SEARCH_TABLE)
    return not (type_ == "index" and name == "ix_task_logs_search")


@event.listens_for(Run.__table__, "after_create")
def _search_index(target, connection, **_):
    """A fresh schema (create_all) gets the search index the migrations give an existing one."""
    statements = {"sqlite": SQLITE_SEARCH_DDL, "postgresql": PG_SEARCH_DDL}.get(connection.dialect.name, ())
    for statement in statements:
        connection.exec_driver_sql(statement)


@event.listens_for(Run.__table__, "before_drop")
def _drop_search_index(target, connection, **_):
    if connection.dialect.name == "sqlite":  # the triggers go with the table; the FTS tables do not
        for name in SQLITE_SEARCH_TABLES:
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
