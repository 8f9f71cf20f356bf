"""The database seam: engine options, SQLite pragmas, and a fresh pool after fork."""
from sqlalchemy import event
from sqlalchemy.engine import Engine

from models import db

SQLITE_BUSY_TIMEOUT_MS = 10_000
PG_CONNECT_TIMEOUT_S = 5


def engine_options(uri):
    """Options that make each backend safe for several writer processes."""
    if uri.startswith("sqlite"):
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}}
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
    cur.close()


@event.listens_for(Engine, "begin")
def _sqlite_begin(conn):
    """Deferred BEGIN: in WAL a reader never blocks a writer; writers wait out the busy timeout."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN")


def dispose_after_fork(app):
    """Drop pooled connections inherited across fork; each process opens its own."""
    with app.app_context():
        db.engine.dispose(close=False)
