"""Result stores that are SQL tables, read with SQL on an engine of their own that only reads: Celery's SQLAlchemy
backend (`db+...`, table celery_taskmeta) and django-celery-results (`django-db`, table
django_celery_results_taskresult, in the project's database named by RESULTS_DATABASE_URL; Django is never
imported). Celery's table is written (forget) through Celery's own backend; the project's database never."""
import ast
import builtins
import sqlite3
from datetime import timezone

import sqlalchemy as sa
from celery import states
from celery.app.backends import by_url
from celery.utils.serialization import create_exception_cls
from kombu.serialization import loads

from panel.broker.store_kv import normal
from panel.errors import ResultsNotKept

CONNECT_TIMEOUT_S = 3
STATEMENT_TIMEOUT_MS = 15000
STREAM_ROWS = 1000
DJANGO_TABLE = "django_celery_results_taskresult"
DJANGO_WHAT_TO_SET = (
    "the project keeps its results with django-celery-results (CELERY_RESULT_BACKEND = \"django-db\"): set "
    "RESULTS_DATABASE_URL to that project's database (its DATABASES['default'] as a SQLAlchemy URL, e.g. "
    "sqlite:////srv/proj/db.sqlite3 or postgresql://user@host/proj); the panel opens it read only")


class ReadOnlySqlite(sqlite3.Connection):
    """A SQLite connection of its own class: the panel's own pragmas (WAL, which writes) are for its database, and
    apply to connections of the sqlite3 module only."""


def read_only_engine(url):
    """An engine that can only read, with short timeouts: the project's database is not the panel's to change."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            parsed = parsed.set(database=f"file:{parsed.database}", query={**parsed.query, "mode": "ro", "uri": "true"})
        return sa.create_engine(parsed, connect_args={"timeout": CONNECT_TIMEOUT_S, "factory": ReadOnlySqlite},
                                poolclass=sa.pool.NullPool)
    if parsed.get_backend_name() == "postgresql":
        options = f"-c default_transaction_read_only=on -c statement_timeout={STATEMENT_TIMEOUT_MS} -c timezone=UTC"
        return sa.create_engine(parsed, pool_pre_ping=True, pool_size=2,
                                connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "options": options})
    return sa.create_engine(parsed, pool_pre_ping=True)


def decoded(payload, content_type="application/json", encoding="utf-8"):
    """A serialized value as the project stored it; JSON only (never unpickled): anything else is shown as text."""
    if payload is None:
        return None
    if isinstance(payload, memoryview):
        payload = payload.tobytes()
    try:
        return loads(payload, content_type or "application/json", encoding or "utf-8", accept={"application/json"})
    except Exception:  # pickle, msgpack, or text nobody serialized: what we can show of it
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload


def as_exception(value):
    """A failure's stored {"exc_type", "exc_message", "exc_module"} as an exception of that name (never imported
    from the project: a built-in one, or a stand-in class of the same name)."""
    if not isinstance(value, dict) or "exc_type" not in value:
        return value
    name, message = str(value["exc_type"]), value.get("exc_message")
    cls = getattr(builtins, name, None) if value.get("exc_module") in (None, "builtins", "exceptions") else None
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        cls = create_exception_cls(name, str(value.get("exc_module") or __name__))
    args = message if isinstance(message, (list, tuple)) else (message,)
    try:
        return cls(*args)
    except Exception:  # an exception class whose constructor wants other arguments
        return Exception(f"{name}: {message}")


def literal_args(text):
    """Arguments the worker showed as text ("(2, 3)", "{'x': 1}"): the value when the text reads back as a Python
    literal (then it is exact), else None."""
    if not isinstance(text, str):
        return list(text) if isinstance(text, (list, tuple)) else text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return list(value) if isinstance(value, (list, tuple)) else value


class Table:
    """One SQL table of results: which columns it has (reflected once), rows as the seam's meta."""

    kind, listable, table_name, schema = "sql", True, "", None
    done_column = "date_done"

    def __init__(self, url):
        self.url = url
        self._engine, self._columns = None, None

    @property
    def engine(self):
        if not self.url:
            raise ResultsNotKept(DJANGO_WHAT_TO_SET)
        if self._engine is None:
            self._engine = read_only_engine(self.url)
        return self._engine

    def columns(self):
        """The table's columns; empty when it does not exist (nothing stored yet)."""
        if self._columns is None:
            inspector = sa.inspect(self.engine)
            if not inspector.has_table(self.table_name, schema=self.schema):
                return {}
            found = inspector.get_columns(self.table_name, schema=self.schema)
            self._columns = {c["name"]: c["type"] for c in found}
        return self._columns

    def table(self):
        cols = self.columns()
        return sa.table(self.table_name, *(sa.column(name, kind) for name, kind in cols.items()), schema=self.schema)

    def get(self, task_id):
        if not self.columns():
            return None
        table = self.table()
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(table).where(table.c.task_id == task_id).limit(1)).mappings().first()
        return self.meta(row) if row else None

    def ended_since(self, since):
        if not self.columns():
            return []
        table = self.table()
        naive = since.astimezone(timezone.utc).replace(tzinfo=None)  # Celery's column is naive UTC
        query = (sa.select(table).where(table.c[self.done_column] >= naive)
                 .where(table.c.status.in_(sorted(states.READY_STATES))))
        with self.engine.connect().execution_options(yield_per=STREAM_ROWS) as conn:
            return [self.meta(row) for row in conn.execute(query).mappings()]

    def check(self):
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        if not self.columns():
            return self.missing_table()
        return {"ok": True, "kind": self.kind}

    def missing_table(self):
        return {"ok": True, "kind": self.kind, "note": f"no table {self.table_name} yet: nothing stored so far"}

    def result_of(self, status, value):
        return as_exception(value) if status in states.EXCEPTION_STATES else value


class CeleryTable(Table):
    """Celery's own SQLAlchemy backend: celery_taskmeta, extended columns when the project set result_extended."""

    kind = "sqlalchemy"

    def __init__(self, url, celery, backend_url):
        super().__init__(url)
        self.celery, self.backend_url = celery, backend_url
        self.table_name = (celery.conf.database_table_names or {}).get("task", "celery_taskmeta")
        self.schema = (celery.conf.database_table_schemas or {}).get("task")

    def meta(self, row):
        out = {"task_id": row["task_id"], "status": row["status"], "traceback": row.get("traceback"),
               "date_done": row.get("date_done"), "result": self.result_of(row["status"], decoded(row.get("result")))}
        for field in ("name", "worker", "retries", "queue"):
            out[field] = row.get(field)
        for field in ("args", "kwargs"):
            out[field] = decoded(row.get(field))
        return normal(out)

    def forget(self, task_id):
        if str(self.celery.conf.result_backend or "") == self.backend_url:
            backend = self.celery.backend
        else:
            cls, url = by_url(self.backend_url, self.celery.loader)
            backend = cls(app=self.celery, url=url)
        backend.forget(task_id)
        return True


class DjangoTable(Table):
    """django-celery-results' table in the project's database: read only, never through Django."""

    kind, table_name = "django-db", DJANGO_TABLE

    def meta(self, row):
        ctype, enc = row.get("content_type"), row.get("content_encoding")
        out = {"task_id": row["task_id"], "status": row["status"], "traceback": row.get("traceback"),
               "date_done": row.get("date_done"), "name": row.get("task_name"), "worker": row.get("worker"),
               "retries": None, "queue": None,
               "result": self.result_of(row["status"], decoded(row.get("result"), ctype, enc))}
        for field in ("args", "kwargs"):
            shown = decoded(row.get(f"task_{field}"), ctype, enc)  # the worker's repr of them, serialized
            out[field] = literal_args(shown)
            out[f"{field}repr"] = shown if isinstance(shown, str) else None
        if out["kwargs"] is not None and not isinstance(out["kwargs"], dict):
            out["kwargs"] = None
        return normal(out)

    def forget(self, task_id):
        return False  # the project's database is opened read only: its own clean-up removes results

    def check(self):
        if not self.url:
            return {"ok": False, "kind": self.kind, "error": DJANGO_WHAT_TO_SET}
        return super().check()

    def missing_table(self):
        return {"ok": False, "kind": self.kind,
                "error": f"no table {DJANGO_TABLE} in RESULTS_DATABASE_URL ({sa.engine.make_url(self.url)!r}): "
                         "is it the project's database, and has it run `manage.py migrate django_celery_results`?"}
