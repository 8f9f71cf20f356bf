"""Sorting the results: newest first (default), oldest first and slowest first, keyset-paged, on both databases."""
import csv
import io
import uuid
from datetime import timedelta

import pytest

from models import Run, db, utcnow
from panel.runlog import outcomes
from tests.helpers import NOW, add_runs, api_client, walk


@pytest.fixture
def app_on(make_app, backend):
    return make_app(backend)


def seed_with_ties(app):
    """40 ended runs in groups sharing one queued_at and one runtime, and 5 that never ran (no runtime)."""
    specs = []
    for i in range(40):
        started = NOW - timedelta(minutes=i // 8)
        runtime_s = float(i // 5) * 1.5  # 5 runs share each runtime
        specs.append({"queued_at": started, "started_at": started, "runtime_s": runtime_s,
                      "finished_at": started + timedelta(seconds=runtime_s)})
    specs += [{"queued_at": NOW - timedelta(minutes=i), "state": "PENDING", "status": "pending"} for i in range(5)]
    add_runs(app, specs)
    with app.app_context():
        rows = db.session.query(Run.celery_task_id, Run.id, Run.queued_at, Run.runtime_s).all()
        db.session.remove()
    return rows


def test_oldest_first_pages_visit_every_run_once_in_queued_order_with_ties(app_on):
    rows = seed_with_ties(app_on)
    runs = walk(api_client(app_on, "viewer"), "sort=oldest&limit=7")
    expected = [r.celery_task_id for r in sorted(rows, key=lambda r: (r.queued_at, r.id))]
    assert [r["celery_task_id"] for r in runs] == expected
    assert len(set(expected)) == 45


def test_slowest_first_pages_list_every_ended_run_once_by_runtime_with_ties(app_on):
    rows = seed_with_ties(app_on)
    runs = walk(api_client(app_on, "viewer"), "sort=slowest&limit=4")
    ended = [r for r in rows if r.runtime_s is not None]
    expected = [r.celery_task_id for r in sorted(ended, key=lambda r: (r.runtime_s, r.id), reverse=True)]
    assert [r["celery_task_id"] for r in runs] == expected  # runs that never ran are not in it
    assert len(expected) == 40
    assert runs[0]["runtime_s"] == 10.5 and runs[-1]["runtime_s"] == 0.0


def test_newest_first_stays_the_default_and_filters_combine_with_a_sort(app_on):
    rows = seed_with_ties(app_on)
    client = api_client(app_on, "viewer")
    expected = [r.celery_task_id for r in sorted(rows, key=lambda r: (r.queued_at, r.id), reverse=True)]
    assert [r["celery_task_id"] for r in walk(client, "limit=6")] == expected
    failed = client.get("/api/runs?sort=slowest&status=PENDING").get_json()
    assert failed["runs"] == [] and failed["filter"] == {"status": "PENDING", "sort": "slowest"}
    page = client.get("/api/runs?sort=oldest&limit=5").get_json()
    assert page["filter"] == {"sort": "oldest"}  # the next page's link keeps the order


@pytest.mark.parametrize("made_by, used_with", [("oldest", "slowest"), ("slowest", "newest"), ("newest", "oldest")])
def test_a_cursor_from_one_order_is_refused_by_another_naming_cursor(app, made_by, used_with):
    seed_with_ties(app)
    client = api_client(app, "viewer")
    cursor = client.get(f"/api/runs?sort={made_by}&limit=3").get_json()["next_cursor"]
    resp = client.get(f"/api/runs?sort={used_with}&cursor={cursor}")
    assert resp.status_code == 400
    assert resp.get_json()["field"] == "cursor" and made_by in resp.get_json()["message"]


def test_an_unknown_sort_is_a_400_naming_sort(app):
    resp = api_client(app, "viewer").get("/api/runs?sort=fastest")
    assert resp.status_code == 400 and resp.get_json()["field"] == "sort"


def test_export_follows_the_sort_through_its_batches(app, monkeypatch):
    from panel.runlog import search
    rows = seed_with_ties(app)
    real_stream = search.stream
    monkeypatch.setattr(search, "stream", lambda flt, engine, batch=1000: real_stream(flt, engine, batch=3))
    body = api_client(app, "viewer").get("/api/runs/export?format=csv&sort=slowest").get_data(as_text=True)
    listed = [line["celery_task_id"] for line in csv.DictReader(io.StringIO(body))]
    ended = [r for r in rows if r.runtime_s is not None]
    assert listed == [r.celery_task_id for r in sorted(ended, key=lambda r: (r.runtime_s, r.id), reverse=True)]


def test_results_page_sorts_and_its_next_link_keeps_the_order(app):
    seed_with_ties(app)
    client = api_client(app, "viewer")
    html = client.get("/runs?sort=slowest&limit=5").get_data(as_text=True)
    assert "sort=slowest" in html.split('rel="next"')[0].rsplit("<a", 1)[1]
    assert '<option value="slowest" selected' in html


def test_a_run_ended_by_the_panel_keeps_its_runtime_for_slowest_first(app_on):
    started = utcnow() - timedelta(seconds=90)
    cid = str(uuid.uuid4())
    add_runs(app_on, [{"celery_task_id": cid, "state": "STARTED", "status": "running", "started_at": started,
                       "queued_at": started}])
    with app_on.app_context():
        outcomes.end([cid], outcomes.CANCELLED)
        run = db.session.query(Run).filter_by(celery_task_id=cid).one()
        assert run.runtime_s == pytest.approx((run.finished_at - run.started_at).total_seconds(), abs=0.01)
        assert 89 < run.runtime_s < 200
        db.session.remove()
