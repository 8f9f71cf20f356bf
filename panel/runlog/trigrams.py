"""Which part of a search term PostgreSQL's trigram index is asked for: the part whose trigrams are rare in the log.

pg_trgm answers LIKE '%term%' by ANDing the posting lists of every trigram of the term. A trigram nearly every run
holds ("sit", "exa" of "site49999.example") walks a posting list as long as the log and narrows nothing: at 2M runs
the whole term took 83 ms in the index (5,109 buffers), its rare part "49999" 2 ms (28 buffers), 12 ms with every
run it found checked against the whole term. So the index is asked for the cheapest part and each run it finds is
checked against the whole term, on an expression the index does not cover: the answer is the scan's whatever part
is chosen; only the time depends on the choice.

How common each trigram is comes from a sample of the log (SAMPLE_ROWS runs, pg_trgm's own show_trgm), taken again
every SAMPLE_TTL_S on a thread of its own; until the first sample the whole term goes to the index, as before.
"""
import logging
import math
import re
import threading
import time

from panel.database import PG_SEARCH_TEXT, reader

log = logging.getLogger("panel.trigrams")

SAMPLE_ROWS = 2000
SAMPLE_TTL_S = 600.0
TERM_MAX = 32  # characters weighed (4 ms the first time); a longer term goes to the index whole
# One run read from the table and checked costs about as much as this many posting-list entries (the 2M-run plans
# above: 2,449 runs checked in ~10 ms, 8 ubiquitous posting lists of 2M entries in ~80 ms).
RECHECK_WEIGHT = 800
CHOICES_KEPT = 512
_WORD = re.compile(r"[a-z0-9]+")


class Sample:
    """Trigram -> share of the sampled runs that hold it."""

    def __init__(self, shares, rows, taken_at):
        self.shares, self.rows, self.taken_at = shares, rows, taken_at
        self.choices = {}  # lowered term -> its cheapest part (start, end), or None: paging asks again and again


_samples = {}  # engine url -> Sample
_sampling = set()  # engine urls being sampled now
_lock = threading.Lock()


def take(engine):
    """Sample the log now (a test, a bench, the refresh thread); returns the Sample."""
    with reader(engine).connect() as conn:
        estimate = conn.exec_driver_sql("SELECT reltuples FROM pg_class WHERE relname = 'task_logs'").scalar() or 0
        percent = 100.0 if estimate <= SAMPLE_ROWS else max(SAMPLE_ROWS * 100.0 / estimate, 0.0001)
        found = conn.exec_driver_sql(
            f"WITH runs AS (SELECT {PG_SEARCH_TEXT} AS t FROM task_logs TABLESAMPLE SYSTEM ({percent:.6f}) "
            f"LIMIT {SAMPLE_ROWS * 2}) "
            "SELECT (SELECT count(*) FROM runs), g, count(*) FROM runs, unnest(show_trgm(runs.t)) g GROUP BY g").all()
    rows = found[0][0] if found else 0
    sample = Sample({gram: n / rows for _, gram, n in found} if rows else {}, rows, time.monotonic())
    with _lock:
        _samples[str(engine.url)] = sample
    return sample


def _refresh(engine):
    try:
        take(engine)
    except Exception as exc:  # noqa: BLE001 - a search without a sample still answers (the whole term)
        log.warning("could not sample the run log's trigrams: %s", exc)
    finally:
        with _lock:
            _sampling.discard(str(engine.url))


def sample_of(engine):
    """The engine's sample, or None before the first; a missing or stale one is (re)taken on a thread."""
    key = str(engine.url)
    with _lock:
        sample = _samples.get(key)
        stale = sample is None or time.monotonic() - sample.taken_at > SAMPLE_TTL_S
        if stale and key not in _sampling:
            _sampling.add(key)
            threading.Thread(target=_refresh, args=(engine,), name="trigram-sample", daemon=True).start()
    return sample


def like_trigrams(part):
    """The trigrams pg_trgm looks up for LIKE '%part%': each word's, padded where a separator bounds it inside the
    part (two blanks before, one after), not where the part's own ends (wildcards) cut it."""
    grams = set()
    for word in _WORD.finditer(part):
        padded = ("  " if word.start() > 0 else "") + word.group() + (" " if word.end() < len(part) else "")
        grams.update(padded[i:i + 3] for i in range(len(padded) - 2))
    return grams


def _cost(grams, sample):
    """Posting-list entries walked plus runs checked, as shares of the log (trigrams taken as independent)."""
    floor = 0.5 / max(sample.rows, 1)  # a trigram the sample never met
    shares = [sample.shares.get(g, 0.0) for g in grams]
    found = math.prod(max(s, floor) for s in shares)
    return sum(shares) + RECHECK_WEIGHT * found


def narrowest(q, sample):
    """The part of `q` to ask the index for, or None for the whole term (no sample, nothing cheaper, a term the
    index could fold otherwise: only ASCII terms are cut, so the part is lowered exactly as within the whole)."""
    if sample is None or not sample.rows or not q.isascii() or len(q) > TERM_MAX:
        return None
    low = q.lower()
    if low not in sample.choices:
        if len(sample.choices) >= CHOICES_KEPT:
            sample.choices.clear()
        sample.choices[low] = _cheapest(low, sample)
    cut = sample.choices[low]
    return None if cut is None else q[cut[0]:cut[1]]


def _cheapest(low, sample):
    """(start, end) of the cheapest part of a lowered term, None when it is the whole."""
    best, best_cost = (0, len(low)), None
    for i in range(len(low)):
        for j in range(len(low), i + 2, -1):  # longest first: among equal costs the longer part narrows more
            grams = like_trigrams(low[i:j])
            if not grams:
                continue
            cost = _cost(grams, sample)
            if best_cost is None or cost < best_cost:
                best, best_cost = (i, j), cost
    return None if best == (0, len(low)) else best
