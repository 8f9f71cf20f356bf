"""The results browser's query: a filter (read by the request's model), in one of three orders, keyset pages."""
import base64
import binascii
import math
import re
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import String, and_, cast, func, literal, literal_column, or_, select, table, tuple_, union_all

from models import Run, db, iso
from panel.database import PG_SEARCH_TEXT, PG_SEPARATOR, SQLITE_SEARCH_TABLES, reader
from panel.errors import ValidationError
from panel.runlog import trigrams
from panel.runlog.previews import LIST_COLUMNS

# Celery's states in the results browser's order; they are what `status` filters on.
STATES = ("SUCCESS", "FAILURE", "PENDING", "RECEIVED", "STARTED", "RETRY", "REVOKED", "UNKNOWN")
# A filter word that is not the state itself: UNKNOWN is the run that ended unseen (status unknown, state ENDED).
STORED_AS = {"UNKNOWN": "ENDED"}
# A filter word that takes in more states: PENDING is every run not started yet, a worker's RECEIVED ones too.
ALSO = {"PENDING": ("RECEIVED",)}
PAGE_SIZE = 50
PAGE_SIZE_MAX = 500
TEXT_MAX = 200
INDEXED_MIN = 3  # characters a text search needs before the substring index can answer it (trigrams)
PROBE = 10_000  # runs SQLite's index may find for a term before the term counts as common
ID_MAX = 2**62  # a run id past this was not handed out (and would overflow the database's integer)
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# Each order walks one index: (queued_at, id) both ways, (runtime_s, id) backwards. "slowest" lists only runs
# with a runtime (started and ended): a run that never ran has no place in it.
SORTS = ("newest", "oldest", "slowest")
CURSOR_TAG = {"newest": "", "oldest": "o|", "slowest": "s|"}  # newest keeps the cursors handed out before sorts


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
    sort: str = "newest"
    text_indexed: bool = field(default=False, repr=False)  # SQLite's index narrows q (see `resolved`)
    text_part: str | None = field(default=None, repr=False)  # the part of q PostgreSQL's index is asked for

    def as_args(self):
        """The filter as query arguments (for links to the next page and to exports)."""
        args = {"task": self.task, "status": ",".join(self.states) or None, "worker": self.worker,
                "since": iso(self.since), "until": iso(self.until), "q": self.q,
                "sort": None if self.sort == "newest" else self.sort}
        return {k: v for k, v in args.items() if v}


def encode_cursor(key, run_id, sort="newest"):
    """The opaque cursor of a page that ends at (key, id): queued_at, or runtime_s when slowest first."""
    key_text = repr(float(key)) if sort == "slowest" else key.isoformat()
    raw = f"{CURSOR_TAG[sort]}{key_text}|{run_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_of(row, sort):
    return (row.runtime_s if sort == "slowest" else row.queued_at), row.id


def _sort_of(raw):
    return next((name for name, tag in CURSOR_TAG.items() if tag and raw.startswith(tag)), "newest")


def _key(text, sort):
    if sort == "slowest":
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(text)
        return value
    at = datetime.fromisoformat(text)
    if at.tzinfo is not None:
        raise ValueError(text)
    return at


def decode_cursor(text, sort="newest"):
    """The (key, id) a page ends at; 400 for anything we did not hand out, or a cursor of another order."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        given = _sort_of(raw)
        stamp, digits = raw[len(CURSOR_TAG[given]):].split("|")
        key, run_id = _key(stamp, given), int(digits)
        if not (digits.isascii() and digits.isdigit()) or not 0 < run_id <= ID_MAX:
            raise ValueError(run_id)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise ValidationError("cursor", "is not one this panel handed out; start again without it") from None
    if given != sort:
        raise ValidationError("cursor", f"belongs to the {given} first order, not {sort} first; "
                                        "start again without it")
    return key, run_id


def text_match(q, dialect, indexed=False, part=None):
    """Runs whose id, args, kwargs, result or error hold `q` (case aside, as lower() folds it). The scan's own test
    decides, narrowed first by the database's substring index when it can (3 characters or more, the shortest
    trigram): SQLite's when `narrows` said so. PostgreSQL's indexed text is those columns lowered and joined by a
    separator no search holds, so LIKE on it is the scan's test itself: alone, the planner estimates it from the
    index's own statistics (ANDed with the scan's ORs it guessed 13 runs for a term in 80 % of them, and sorted a
    parallel scan: 320 ms instead of 1 ms at 300k runs)."""
    exact = or_(*(cast(column, String).icontains(q, autoescape=True)
                  for column in (Run.celery_task_id, Run.args, Run.kwargs, Run.result, Run.error)))
    if indexed:
        return and_(Run.id.in_(_fts(q)), exact)
    if dialect == "postgresql" and len(q) >= INDEXED_MIN:  # the indexed expression, LIKE a constant pattern
        if part:  # the index finds the rare part; the whole term is checked on what it found (trigrams.py)
            return and_(_contains(PG_SEARCH_TEXT, part), _contains(f"({PG_SEARCH_TEXT} || '')", q))
        indexed_like = _contains(PG_SEARCH_TEXT, q)
        return indexed_like if PG_SEPARATOR not in q else and_(indexed_like, exact)
    return exact


def _contains(expression, q):
    """`expression` LIKE '%q%', q lowered by the database as the expression is, LIKE's own characters escaped."""
    escaped = q.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return literal_column(expression).like(literal("%") + func.lower(literal(escaped)) + literal("%"), escape="/")


def _fts(q):
    """The ids SQLite's FTS5 trigram indexes find for `q` (a superset of the scan's: it folds more case), in what
    runs were sent with or in how they ended."""
    phrase = '"' + q.replace('"', '""') + '"'  # one FTS5 string: every character as itself
    found = [select(literal_column("rowid")).select_from(table(name)).where(literal_column(name).op("MATCH")(phrase))
             for name in SQLITE_SEARCH_TABLES]
    return union_all(*found)  # IN and a count up to PROBE need no duplicates removed (a sort of every match)


def narrows(q, conn):
    """SQLite: whether its index finds `q` in at most PROBE runs (counted inside the database, nothing fetched); a
    common term is found sooner by walking the list in the page's order. False where the index cannot answer (a
    short term, a task id, another database)."""
    if not q or conn.dialect.name != "sqlite" or len(q) < INDEXED_MIN or UUID_RE.match(q):
        return False
    found = conn.execute(select(func.count()).select_from(_fts(q).limit(PROBE + 1).subquery())).scalar()
    return found <= PROBE


def resolved(flt, conn):
    """The filter, knowing how the index answers its text search: SQLite's whether at all, PostgreSQL's for which
    part of the term."""
    if not flt.q:
        return flt
    if conn.dialect.name == "postgresql":
        part = None
        if len(flt.q) >= INDEXED_MIN and PG_SEPARATOR not in flt.q and not UUID_RE.match(flt.q):
            part = trigrams.narrowest(flt.q, trigrams.sample_of(conn.engine))
        return replace(flt, text_part=part)
    return replace(flt, text_indexed=narrows(flt.q, conn))


def conditions(flt, dialect=None):
    """WHERE terms for a filter (without the cursor): each equality uses its (column, queued_at, id) index."""
    terms = []
    if flt.task:
        terms.append(Run.task_name == flt.task)
    if flt.states:
        states = [STORED_AS.get(state, state) for state in flt.states]
        states = list(dict.fromkeys(states + [also for state in flt.states for also in ALSO.get(state, ())]))
        terms.append(Run.state == states[0] if len(states) == 1 else Run.state.in_(states))
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
            terms.append(text_match(flt.q, dialect or db.engine.dialect.name, flt.text_indexed, flt.text_part))
    return terms


def _ordered(query, flt):
    """ORDER BY and the keyset step for the filter's sort (ties broken by id, so no run is skipped or repeated)."""
    if flt.sort == "slowest":
        query = query.where(Run.runtime_s.is_not(None))
        key, forward = Run.runtime_s, False
    else:
        key, forward = Run.queued_at, flt.sort == "oldest"
    if flt.cursor:
        after = tuple_(key, Run.id)
        query = query.where(after > flt.cursor if forward else after < flt.cursor)
    return query.order_by(key.asc(), Run.id.asc()) if forward else query.order_by(key.desc(), Run.id.desc())


_LISTED = select(*LIST_COLUMNS)  # built once: each page's query adds its filter to it, not its ~30 columns anew


def select_runs(flt, limit=None, dialect=None):
    """The filter's runs in its order, starting after the cursor; args, kwargs, result, error and traceback as
    previews (a list and an export never carry a huge value whole)."""
    query = _ordered(_LISTED.where(*conditions(flt, dialect)), flt)
    return query.limit(limit) if limit else query


def page(flt):
    """One page of runs and the cursor of the next one (None on the last page)."""
    with reader(db.engine).connect() as conn:
        rows = conn.execute(select_runs(resolved(flt, conn), flt.limit + 1, conn.dialect.name)).all()
    more = len(rows) > flt.limit
    rows = rows[:flt.limit]
    return rows, (encode_cursor(*cursor_of(rows[-1], flt.sort), flt.sort) if more else None)


def stream(flt, engine, batch=1000):
    """Every run the filter matches, in its order, in keyset batches; needs no app context (a streamed reply)."""
    cursor = flt.cursor
    with engine.connect() as conn:
        flt = resolved(flt, conn)
    while True:
        with engine.connect() as conn:
            rows = conn.execute(select_runs(replace(flt, cursor=cursor), batch, engine.dialect.name)).all()
        yield from rows
        if len(rows) < batch:
            return
        cursor = cursor_of(rows[-1], flt.sort)
