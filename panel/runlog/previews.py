"""Previews: lists and exports of runs carry a bounded cut of each run's args, kwargs, result, error and traceback,
cut by the database itself, so one huge value weighs on no list; the run's own page and JSON keep every value whole."""
import json

from sqlalchemy import Integer, String, cast, func
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from models import Run

# A list cell says what a value is at a glance and the run's page shows it whole: 200 characters of its JSON text
# are two lines of a cell, and keep a 50-run page's args, kwargs and results under ~30 KB whatever the runs hold.
DATA_PREVIEW_CHARS = 200
# Errors and tracebacks are prose a person reads whole in the common case (a worker's traceback is ~1-2,000
# characters); only the rare huge one is cut (an exception quoting a huge argument, stored up to 64 KB).
PROSE_PREVIEW_CHARS = 2000
BOUNDS = {"args": DATA_PREVIEW_CHARS, "kwargs": DATA_PREVIEW_CHARS, "result": DATA_PREVIEW_CHARS,
          "error": PROSE_PREVIEW_CHARS, "traceback": PROSE_PREVIEW_CHARS}
JSON_FIELDS = ("args", "kwargs")  # stored as JSON: cut and sized as their JSON text
SIZE = "_size"  # the label of a previewed field's whole size, e.g. args_size


class ByteSize(FunctionElement):
    """The size in bytes of a text (UTF-8), which both databases know without counting its characters."""

    type = Integer()
    inherit_cache = True


@compiles(ByteSize)
def _octet_length(element, compiler, **kw):
    return f"octet_length({compiler.process(element.clauses, **kw)})"


@compiles(ByteSize, "sqlite")
def _blob_length(element, compiler, **kw):  # SQLite has octet_length only from 3.43
    return f"length(CAST({compiler.process(element.clauses, **kw)} AS BLOB))"


def _text(name):
    column = Run.__table__.c[name]
    return cast(column, String) if name in JSON_FIELDS else column


# The run table's columns for a list: each previewed field as its first characters (one more than the bound, which
# tells a cut value from one exactly at it) and its whole size, worked out where the value lies: the database sends
# 201 characters of a 10 MB argument, never the 10 MB, and sizes it in bytes (counting characters would read it all).
LIST_COLUMNS = (tuple(c for c in Run.__table__.columns if c.name not in BOUNDS)
                + tuple(func.substr(_text(name), 1, bound + 1).label(name) for name, bound in BOUNDS.items())
                + tuple(ByteSize(_text(name)).label(name + SIZE) for name in BOUNDS))


def is_preview(row):
    """Whether a row came from a list query (LIST_COLUMNS), not whole from the run table."""
    return hasattr(row, "args" + SIZE)


def _json(text):
    """A previewed JSON text's value; the empty list and object most runs hold are not parsed."""
    return [] if text == "[]" else {} if text == "{}" else json.loads(text)


def values(row):
    """({field: value as the API shows it}, {field: whole size in bytes} of the fields cut), for a list row or a
    whole run (nothing cut). A cut value is its first characters as a string (of its JSON text for args and kwargs);
    a value within its bound is the value itself, lists still lists."""
    if not is_preview(row):
        return {name: getattr(row, name) for name in BOUNDS}, {}
    shown, cut = {}, {}
    for name, bound in BOUNDS.items():
        text = getattr(row, name)
        if text is not None and len(text) > bound:
            shown[name], cut[name] = text[:bound], getattr(row, name + SIZE)
        else:
            shown[name] = _json(text) if name in JSON_FIELDS and text is not None else text
    return shown, cut
