"""The database seam: engine options, SQLite pragmas, a fresh pool after fork, and small writes off the request."""
import logging
import threading

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from models import db

log = logging.getLogger("panel.database")

SQLITE_BUSY_TIMEOUT_MS = 10_000
PG_CONNECT_TIMEOUT_S = 5


IMMEDIATE = "sqlite_begin_immediate"


def engine_options(uri):
    """Options that make each backend safe for several writer processes."""
    if uri.startswith("sqlite"):
        # ORM sessions are units of work that may write after reading: they take the write lock up
        # front, because a deferred reader that later writes gets SQLITE_BUSY at once, not after a wait.
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
                "execution_options": {IMMEDIATE: True}}
    if uri.startswith("postgresql"):
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": PG_CONNECT_TIMEOUT_S}}
    return {"pool_pre_ping": True}


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
