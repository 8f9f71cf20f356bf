"""Prepared reads: a poll's SELECT compiled once per dialect and run straight on a pooled DB-API connection (the
run recorder's writes do the same in panel/runlog/prepared.py).

SQLAlchemy's execution path (connection object, events, execution context, result metadata) costs ~50 µs a
statement, and a deferred BEGIN through it ~20 µs more: more than the indexed lookup itself. A prepared read keeps
what matters of it: the dialect's SQL and parameter style, the column types' own result processors (SQLite's
datetimes and JSON come back typed exactly as SQLAlchemy would give them), the pool (pre-ping, reset on return),
invalidation on a lost connection, and database errors raised as SQLAlchemy's (OperationalError is a 503 like any).
"""
import threading
from collections import namedtuple
from contextlib import contextmanager

from sqlalchemy import exc

_compiling = threading.Lock()


class PreparedRead:
    """One SELECT with named bind parameters; its rows are tuples whose fields are the statement's column keys."""

    def __init__(self, statement, name="Row"):
        self.statement, self.name = statement, name
        self._compiled = {}  # dialect name -> (compiled, SQL text)
        self._typed = {}  # (dialect name, cursor's column types) -> (result processors, row class)

    def _sql(self, dialect):
        found = self._compiled.get(dialect.name)
        if found is None:
            with _compiling:
                compiled = self.statement.compile(dialect=dialect)
                found = self._compiled[dialect.name] = (compiled, compiled.string)
        return found

    def _rows_of(self, compiled, dialect, description):
        """How to type the cursor's rows: made on the first execution, when the driver's column types are known."""
        codes = tuple(column[1] for column in description)
        found = self._typed.get((dialect.name, codes))
        if found is None:
            columns = compiled._result_columns  # (key, name, objects, type) of each selected column, in order
            processors = tuple(type_._cached_result_processor(dialect, code)
                               for (_key, _name, _objects, type_), code in zip(columns, codes))
            shape = namedtuple(self.name, [key for key, *_ in columns], rename=True)
            row_class = type(self.name, (shape,), {"__slots__": (), "_mapping": property(shape._asdict)})
            found = self._typed[(dialect.name, codes)] = (processors, row_class)
        return found

    def rows(self, reading, **params):
        """Every row, typed; `reading` is a ReadConnection."""
        dialect = reading.dialect
        compiled, sql = self._sql(dialect)
        values = compiled.construct_params(params)
        if compiled.positiontup is not None:  # qmark / numeric styles (SQLite): the values in the SQL's order
            values = tuple(values[name] for name in compiled.positiontup)
        cursor = reading.cursor(sql, values)
        try:
            raw = cursor.fetchall()
            processors, row_class = self._rows_of(compiled, dialect, cursor.description)
        except Exception as error:
            reading.failed(error, sql, values, cursor)
            raise
        finally:
            cursor.close()
        if not any(processors):
            return [row_class._make(row) for row in raw]
        return [row_class._make([value if convert is None else convert(value)
                                 for convert, value in zip(processors, row)]) for row in raw]

    def first(self, reading, **params):
        found = self.rows(reading, **params)
        return found[0] if found else None


class ReadConnection:
    """A pooled DB-API connection inside one read-only transaction (deferred on SQLite: it never waits for a writer)."""

    def __init__(self, engine, pooled):
        self.dialect, self._pooled = engine.dialect, pooled
        self._dbapi_error = engine.dialect.loaded_dbapi.Error

    def cursor(self, sql, values):
        cursor = self._pooled.cursor()
        try:
            cursor.execute(sql, values)
        except Exception as error:
            self.failed(error, sql, values, cursor)
            cursor.close()
            raise
        return cursor

    def failed(self, error, sql, values, cursor=None):
        """A driver's error as SQLAlchemy raises it (the same class and wording); a lost connection leaves the pool."""
        if not isinstance(error, self._dbapi_error):
            return
        lost = self.dialect.is_disconnect(error, self._pooled.dbapi_connection, cursor)
        if lost:
            self._pooled.invalidate(error)
        raise exc.DBAPIError.instance(sql, values, error, self._dbapi_error, connection_invalidated=lost,
                                      dialect=self.dialect) from error


@contextmanager
def reading(engine):
    """A ReadConnection for the `with` block: checked out of the engine's pool, rolled back and returned after."""
    pooled = engine.raw_connection()
    reading_ = ReadConnection(engine, pooled)
    try:
        if engine.dialect.name == "sqlite":  # autocommit at the driver (panel.database): open the snapshot ourselves
            reading_.cursor("BEGIN", ()).close()
        yield reading_
    finally:
        try:
            pooled.dbapi_connection.rollback()
        except Exception as error:  # the transaction's end failed: the connection is not returned for reuse
            pooled.invalidate(error)
        pooled.close()
