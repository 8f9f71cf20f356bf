"""The results browser's query: a filter (read by the request's model), newest first, keyset pages."""
import base64
import binascii
import re
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import String, cast, or_, select, tuple_

from models import Run, db
from panel.database import reader
from panel.errors import ValidationError

# Celery's states as seed 003 lists them, in its order; they are what `status` filters on.
STATES = ("SUCCESS", "FAILURE", "PENDING", "STARTED", "RETRY", "REVOKED")
PAGE_SIZE = 50
PAGE_SIZE_MAX = 500
TEXT_MAX = 200
ID_MAX = 2**62  # a run id past this was not handed out (and would overflow the database's integer)
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
COLUMNS = tuple(Run.__table__.columns)


@dataclass
class RunFilter:
    """What the person asked to see; every field optional."""

    task: str | None = None
    states: tuple = ()
    worker: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str | None = None
    limit: int = PAGE_SIZE
    cursor: tuple | None = field(default=None, repr=False)

    def as_args(self):
        """The filter as query arguments (for links to the next page and to exports)."""
        args = {"task": self.task, "status": ",".join(self.states) or None, "worker": self.worker,
                "since": _iso(self.since), "until": _iso(self.until), "q": self.q}
        return {k: v for k, v in args.items() if v}


def _iso(value):
    return value.isoformat() + "Z" if value else None


def encode_cursor(queued_at, run_id):
    raw = f"{queued_at.isoformat()}|{run_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text):
    """The (queued_at, id) a page ends at; 400 for anything we did not hand out."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        stamp, digits = raw.split("|")
        at, run_id = datetime.fromisoformat(stamp), int(digits)
        if at.tzinfo is not None or not (digits.isascii() and digits.isdigit()) or not 0 < run_id <= ID_MAX:
            raise ValueError(run_id)
        return at, run_id
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise ValidationError("cursor", "is not one this panel handed out; start again without it") from None


def conditions(flt):
    """WHERE terms for a filter (without the cursor): each equality uses its (column, queued_at, id) index."""
    terms = []
    if flt.task:
        terms.append(Run.task_name == flt.task)
    if flt.states:
        terms.append(Run.state == flt.states[0] if len(flt.states) == 1 else Run.state.in_(flt.states))
    if flt.worker:
        terms.append(Run.worker == flt.worker)
    if flt.since:
        terms.append(Run.queued_at >= flt.since)
    if flt.until:
        terms.append(Run.queued_at < flt.until)
    if flt.q:
        if UUID_RE.match(flt.q):  # a task id: one probe of the unique index
            terms.append(Run.celery_task_id.in_(sorted({flt.q, flt.q.lower()})))
        else:
            terms.append(or_(Run.celery_task_id.icontains(flt.q, autoescape=True),
                             cast(Run.args, String).icontains(flt.q, autoescape=True),
                             cast(Run.kwargs, String).icontains(flt.q, autoescape=True)))
    return terms


def select_runs(flt, limit=None):
    """Newest first by (queued_at, id), starting after the cursor."""
    query = select(*COLUMNS).where(*conditions(flt))
    if flt.cursor:
        at, run_id = flt.cursor
        query = query.where(tuple_(Run.queued_at, Run.id) < (at, run_id))
    query = query.order_by(Run.queued_at.desc(), Run.id.desc())
    return query.limit(limit) if limit else query


def page(flt):
    """One page of runs and the cursor of the next one (None on the last page)."""
    with reader(db.engine).connect() as conn:
        rows = conn.execute(select_runs(flt, flt.limit + 1)).all()
    more = len(rows) > flt.limit
    rows = rows[:flt.limit]
    return rows, (encode_cursor(rows[-1].queued_at, rows[-1].id) if more else None)


def stream(flt, engine, batch=1000):
    """Every run the filter matches, newest first, in keyset batches; needs no app context (a streamed reply)."""
    cursor = flt.cursor
    while True:
        with engine.connect() as conn:
            rows = conn.execute(select_runs(replace(flt, cursor=cursor), batch)).all()
        yield from rows
        if len(rows) < batch:
            return
        cursor = (rows[-1].queued_at, rows[-1].id)
