"""Exports of a filtered run list as CSV or JSON, streamed in keyset batches (any size, flat memory); long values
are cut to previews as in the list (previews.py), and each run's `cut` names them with their whole size."""
import csv
import io
import json

from panel.runlog import runs, search

FIELDS = ("celery_task_id", "task", "state", "status", "queued_at", "started_at", "finished_at", "runtime_s",
          "worker", "retries", "scheduled_task_id", "args", "kwargs", "result", "error", "cut")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # spreadsheets would run these as formulas


def _cell(value):
    if isinstance(value, (list, dict)):
        value = json.dumps(value, ensure_ascii=False)
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) and not _is_number(text) else text


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def csv_lines(flt, engine):
    """The header, then one line per run, newest first."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(FIELDS)
    for row in search.stream(flt, engine):
        record = runs.as_dict(row)
        record["cut"] = {name: size for name, size in record["cut"].items() if name in FIELDS} or None
        writer.writerow([_cell(record[f]) for f in FIELDS])
        if buf.tell() > 64 * 1024:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def json_chunks(flt, engine):
    """A JSON array of runs (with tracebacks), written piece by piece."""
    yield "["
    first = True
    for row in search.stream(flt, engine):
        yield ("" if first else ",\n") + json.dumps(runs.as_dict(row), ensure_ascii=False)
        first = False
    yield "]\n"
