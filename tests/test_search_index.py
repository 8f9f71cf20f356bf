"""Text search through the database's substring index (SQLite FTS5 trigrams, PostgreSQL pg_trgm): the same runs as
the scan, for substrings, case, non-ASCII and the characters LIKE and FTS5 treat specially, kept by every write."""
import random
import uuid
from urllib.parse import quote

import pytest
from flask_migrate import upgrade
from sqlalchemy import select, text, update

from models import Run, db
from panel.runlog import search, trigrams
from tests.helpers import add_runs, api_client, walk

WORDS = ["https://example.org/shop?id=42", "Ada Lovelace", "100% sure", "under_score", 'say "hi"', "café crème",
         "GRÖSSE größe", "東京タワー", "emoji 🚀 launch", "path/to/file", "it's", "ERROR: Timeout", "tab\there",
         "MiXeD CaSe", "ünïcödé", "Ꭰ cherokee", "İstanbul", "ǅemal", "x" * 40, "a%b_c/d"]


def seeded(app):
    """Runs whose args, kwargs, result and error hold the words in many combinations (a fixed seed)."""
    rng = random.Random(28)
    specs = []
    for n in range(240):
        pick = lambda: rng.choice(WORDS)  # noqa: E731
        specs.append({"args": [pick(), n] if n % 3 else [], "kwargs": {"k": pick()} if n % 4 else {},
                      "result": f'"{pick()}"' if n % 5 else None, "error": pick() if n % 7 == 0 else None})
    return add_runs(app, specs)


def queries():
    rng = random.Random(7)
    found = ["lovelace", "LOVELACE", "100%", "1%0", "under_", "r_s", '"hi"', "café", "CAFÉ", "größe", "GRÖSSE",
             "東京", "京タ", "🚀", "/to/", "it's", "timeout", "tab\th", "mixed case", "ünï", "İst", "ǅ", "xxxxx",
             "a%b_c/d", "%b_", "\\", "zzz-not-there", "ex", "é", "42", "shop?id=4"]
    for word in WORDS:  # random substrings of every word
        for _ in range(3):
            start = rng.randrange(len(word))
            found.append(word[start:start + rng.randrange(1, 8)])
    return [q for q in dict.fromkeys(found) if q.strip()]


def answer(app, q, dialect):
    """The run ids the filter matches: `dialect` None is the scan alone (the index left out)."""
    with app.app_context():
        indexed = search.narrows(q, db.session.connection()) if dialect else False
        where = search.text_match(q, dialect or "none", indexed)
        return set(db.session.scalars(select(Run.celery_task_id).where(where)))


@pytest.mark.parametrize("backend, probe", [("sqlite", 10_000), ("sqlite", 5), ("postgresql", None)])
def test_the_index_answers_the_same_runs_as_the_scan(make_app, backend, probe, monkeypatch):
    """With SQLite's probe small, most terms count as common and take the scan: the answer is the same."""
    if probe:
        monkeypatch.setattr(search, "PROBE", probe)
    app = make_app(backend)
    ids = seeded(app)
    dialect = "sqlite" if backend == "sqlite" else "postgresql"
    asked = queries()
    differ = {q: (answer(app, q, dialect) ^ answer(app, q, None)) for q in asked}
    assert {q: d for q, d in differ.items() if d} == {}
    hits = sum(1 for q in asked if answer(app, q, None))
    assert hits > len(asked) / 2, "the sample must find something for most queries to compare anything"
    assert answer(app, "café", dialect) and answer(app, "東京", dialect), "non-ASCII in args and results is found"
    client = api_client(app, "viewer")  # and through the API, with its paging
    assert {r["celery_task_id"] for r in walk(client, "q=" + quote("größe"))} == answer(app, "größe", None)
    assert ids


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_index_follows_every_insert_update_and_delete(make_app, backend):
    app = make_app(backend)
    dialect = "sqlite" if backend == "sqlite" else "postgresql"
    [first, second] = add_runs(app, [{"args": ["before-the-change"]}, {"args": ["stays"]}])
    with app.app_context():
        db.session.execute(update(Run).where(Run.celery_task_id == first).values(
            args=["after-the-change"], result='"the result came later"', error="then an error"))
        db.session.commit()
    assert answer(app, "before-the", dialect) == set()
    assert answer(app, "after-the", dialect) == {first}
    assert answer(app, "result came", dialect) == {first} and answer(app, "an error", dialect) == {first}
    with app.app_context():
        db.session.execute(Run.__table__.delete().where(Run.celery_task_id == first))
        db.session.commit()
    assert answer(app, "after-the", dialect) == set() and answer(app, "stays", dialect) == {second}


def explained(app, query, backend):
    """The database's plan for a statement: where it looks for the rows."""
    with app.app_context():
        sql = str(query.compile(db.engine, compile_kwargs={"literal_binds": True}))
        with db.engine.connect() as conn:
            if backend == "sqlite":
                return " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
            conn.exec_driver_sql("SET enable_seqscan = off")  # a tiny table would be scanned whatever the index
            return " ".join(row[0] for row in conn.execute(text(f"EXPLAIN {sql}")))


def test_sqlite_asks_its_trigram_index_for_three_characters_or_more(make_app):
    app = make_app()
    add_runs(app, [{"args": ["needle in a haystack"]}])
    with app.app_context():
        conn = db.session.connection()
        assert search.narrows("needle", conn)
        assert not search.narrows("ne", conn) and not search.narrows(str(uuid.uuid4()), conn)  # short; a task id
    shown = explained(app, select(Run.id).where(search.text_match("needle", "sqlite", True)), "sqlite")
    assert "VIRTUAL TABLE INDEX" in shown and "run_search" in shown, shown
    assert "run_search" not in explained(app, select(Run.id).where(search.text_match("ne", "sqlite")), "sqlite")


def test_postgresql_reads_its_trigram_index_for_three_characters_or_more(make_app):
    app = make_app("postgresql")
    add_runs(app, [{"args": ["needle in a haystack"]}])
    assert "ix_task_logs_search" in explained(app, select(Run.id).where(search.text_match("needle", "postgresql")),
                                              "postgresql")
    assert "ix_task_logs_search" not in explained(app, select(Run.id).where(search.text_match("ne", "postgresql")),
                                                  "postgresql")


def test_postgresql_answers_the_same_runs_when_its_index_is_asked_for_a_part(make_app):
    """The sample of the seeded runs makes their words' trigrams common: many terms are cut to a rarer part, and
    each still finds exactly the scan's runs."""
    app = make_app("postgresql")
    seeded(app)
    with app.app_context():
        sample = trigrams.take(db.engine)
    cut = {}
    for q in queries():
        part = trigrams.narrowest(q, sample) if len(q) >= search.INDEXED_MIN else None
        if part:
            cut[q] = part
            with app.app_context():
                got = set(db.session.scalars(select(Run.celery_task_id).where(
                    search.text_match(q, "postgresql", part=part))))
            assert got == answer(app, q, None), (q, part)
    assert len(cut) >= 5 and all(part in q and part != q for q, part in cut.items()), cut


def test_postgresql_asks_its_index_for_the_rare_part_of_a_term_and_checks_the_whole(make_app):
    app = make_app("postgresql")
    ids = add_runs(app, [{"args": [f"https://site{n}.example/page/{n % 7}"]} for n in range(400)])
    with app.app_context():
        sample = trigrams.take(db.engine)
        flt = search.resolved(search.RunFilter(q="site123.example"), db.session.connection())
    assert sample.rows == 400 and flt.text_part and "123" in flt.text_part and "example" not in flt.text_part
    shown = explained(app, select(Run.id).where(search.text_match(flt.q, "postgresql", part=flt.text_part)),
                      "postgresql")
    assert "ix_task_logs_search" in shown and f"%{flt.text_part}%" in shown and "%site123.example%" in shown, shown
    found = walk(api_client(app, "viewer"), "q=site123.example")  # the sample is the one the panel reads now
    assert [r["celery_task_id"] for r in found] == [ids[123]]


def test_a_term_is_cut_only_where_trigrams_are_common_and_only_when_ascii():
    shares = {g: 0.9 for g in ("sit", "ite", "exa", "xam", "amp", "mpl", "ple", "  e", " ex", "le ")}
    rarer = {"te4": 0.1, "e49": 0.02, "499": 0.03, "999": 0.03, "99 ": 0.02}
    sample = trigrams.Sample(dict(shares, **rarer), 2000, 0.0)
    assert trigrams.narrowest("site49999.example", sample) == "e49999"
    assert trigrams.narrowest("SITE49999.EXAMPLE", sample) == "E49999"  # cut from the term as typed
    assert trigrams.narrowest("qwzrtx", sample) is None, "every trigram is rare: the whole term is cheapest"
    assert trigrams.narrowest("sïte49999.example", sample) is None, "non-ASCII: lowered by the database, not cut"
    assert trigrams.narrowest("site49999.example", None) is None, "no sample yet: the whole term"
    assert trigrams.like_trigrams("ab.cde") == {"ab ", "  c", " cd", "cde"}  # padded at the dot, not at the ends


def test_the_migration_indexes_the_runs_already_there(make_app):
    app = make_app()
    with app.app_context():
        db.drop_all()
        upgrade(revision="f7c2d4e6a8b0")  # a database from before the index, holding runs
        db.session.remove()
    [old] = add_runs(app, [{"args": ["written before the index"]}])
    with app.app_context():
        assert db.session.execute(text("SELECT count(*) FROM sqlite_master WHERE name = 'run_search'")).scalar() == 0
    with app.app_context():
        upgrade()
    assert answer(app, "before the index", "sqlite") == {old}


def test_the_split_migration_finds_what_the_one_table_index_held_and_then_keeps_both(make_app):
    """SQLite: from the one FTS table to two (sent with / ended with), the runs already there found by either."""
    app = make_app()
    with app.app_context():
        db.drop_all()
        upgrade(revision="b3d5f7a9c1e2")  # the one table over all five columns
        db.session.remove()
    ended, waiting = add_runs(app, [{"args": ["sent-before-split"], "result": '"ended-before-split"'},
                                    {"args": ["still-waiting"], "error": "an error-before-split"}])
    with app.app_context():
        upgrade()
        tables = {r[0] for r in db.session.execute(text("SELECT name FROM sqlite_master WHERE name LIKE 'run_search%' "
                                                        "AND type = 'table' AND sql LIKE 'CREATE VIRTUAL%'"))}
    assert tables == {"run_search", "run_search_end"}
    assert answer(app, "sent-before", "sqlite") == {ended} and answer(app, "ended-before", "sqlite") == {ended}
    assert answer(app, "error-before", "sqlite") == {waiting} and answer(app, "still-wait", "sqlite") == {waiting}
    with app.app_context():
        db.session.execute(text("UPDATE task_logs SET result = :result, error = NULL WHERE celery_task_id = :id"),
                           {"id": waiting, "result": '"ended-after-split"'})
        db.session.commit()
    assert answer(app, "ended-after", "sqlite") == {waiting} and answer(app, "error-before", "sqlite") == set()
    assert answer(app, "still-wait", "sqlite") == {waiting}  # its arguments were not touched by its ending
