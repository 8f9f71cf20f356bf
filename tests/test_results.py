"""The results browser: filters, keyset pages, search, export, deletion and retention, on both databases."""
import csv
import io
import json
import time
from datetime import timedelta

import pytest
from flask_migrate import upgrade

from models import Run, Schedule, db, utcnow
from panel.beat.schedules import parse_crontab
from panel.runlog import retention, tally
from tests.helpers import NOW, add_runs, api_client, run_row, start_worker, wait_for, walk


@pytest.fixture
def app_on(make_app, backend):
    return make_app(backend)


def test_keyset_pages_visit_every_run_once_newest_first_even_with_equal_times(app_on):
    # 25 runs share one timestamp: the id breaks the tie, so no run is skipped or repeated at a page edge.
    specs = [{"queued_at": NOW - timedelta(minutes=i // 25)} for i in range(60)]
    ids = add_runs(app_on, specs)
    runs = walk(api_client(app_on), "limit=7")
    assert sorted(r["celery_task_id"] for r in runs) == sorted(ids)
    assert len({r["celery_task_id"] for r in runs}) == 60
    keys = [r["queued_at"] for r in runs]
    assert keys == sorted(keys, reverse=True)


def test_filters_by_task_status_worker_and_date_range(app_on):
    add_runs(app_on, [
        {"task_name": "crawl_url", "state": "SUCCESS", "worker": "w1@a", "queued_at": NOW - timedelta(days=3)},
        {"task_name": "crawl_url", "state": "FAILURE", "worker": "w2@b", "queued_at": NOW - timedelta(days=1)},
        {"task_name": "tests.add", "state": "FAILURE", "worker": "w1@a", "queued_at": NOW},
        {"task_name": "tests.add", "state": "RETRY", "worker": None, "queued_at": NOW},
    ])
    client = api_client(app_on, "viewer")
    tasks = lambda q: sorted((r["task"], r["state"]) for r in walk(client, q))  # noqa: E731
    assert tasks("task=tests.add") == [("tests.add", "FAILURE"), ("tests.add", "RETRY")]
    assert tasks("status=failure") == [("crawl_url", "FAILURE"), ("tests.add", "FAILURE")]
    assert tasks("status=SUCCESS,RETRY") == [("crawl_url", "SUCCESS"), ("tests.add", "RETRY")]
    assert tasks("worker=w1@a&status=FAILURE") == [("tests.add", "FAILURE")]
    day_before = (NOW - timedelta(days=1)).date().isoformat()
    # a bare until is the whole day
    assert tasks(f"since={day_before}&until={day_before}") == [("crawl_url", "FAILURE")]
    assert len(walk(client, f"since={(NOW - timedelta(hours=1)).isoformat()}Z")) == 2


def test_search_finds_a_run_by_task_id_and_by_text_in_args_and_kwargs(app_on):
    ids = add_runs(app_on, [
        {"args": ["https://example.org/shop?id=42"], "kwargs": {}},
        {"args": [], "kwargs": {"customer": "Ada Lovelace"}},
        {"args": ["100% sure"], "kwargs": {}},
        {"args": ["nothing"], "kwargs": {}},
    ])
    client = api_client(app_on)
    assert [r["celery_task_id"] for r in walk(client, f"q={ids[3]}")] == [ids[3]]
    assert [r["celery_task_id"] for r in walk(client, "q=example.org")] == [ids[0]]
    assert [r["celery_task_id"] for r in walk(client, "q=lovelace")] == [ids[1]]
    assert [r["celery_task_id"] for r in walk(client, "q=100%25")] == [ids[2]]  # % is a literal, not a wildcard
    assert walk(client, "q=1%250") == []  # as a wildcard "1%0" would match "100% sure"
    assert [r["celery_task_id"] for r in walk(client, f"q={ids[2][:13]}")] == [ids[2]]  # part of an id


@pytest.mark.parametrize("query, field", [
    ("status=DONE", "status"), ("since=yesterday", "since"), ("until=2026-02-30", "until"),
    ("cursor=bm90LWEtY3Vyc29y", "cursor"), ("limit=0", "limit"), ("limit=501", "limit"), ("limit=ten", "limit"),
    ("since=2026-01-02&until=2026-01-01", "until"), ("q=" + "x" * 201, "q"),
])
def test_bad_filters_answer_400_naming_the_field(app, query, field):
    resp = api_client(app).get("/api/runs?" + query)
    assert resp.status_code == 400 and resp.is_json
    assert resp.get_json()["field"] == field


def test_list_leaves_out_tracebacks_and_detail_has_everything_with_its_schedule(app):
    with app.app_context():
        task = Schedule(name="nightly crawl", task="crawl_url", args=["http://x"], kwargs={}, interval_seconds=60)
        db.session.add(task)
        db.session.commit()
        task_id = task.id
        db.session.remove()
    [cid] = add_runs(app, [{"state": "FAILURE", "status": "failed", "scheduled_task_id": task_id, "error": "boom",
                            "traceback": "Traceback (most recent call last):\n  ValueError: boom", "retries": 2,
                            "started_at": NOW, "finished_at": NOW + timedelta(seconds=3), "worker": "w1@a"}])
    client = api_client(app, "viewer")
    [listed] = client.get("/api/runs").get_json()["runs"]
    assert "traceback" not in listed and listed["error"] == "boom"
    detail = client.get(f"/api/runs/{cid}").get_json()
    assert detail["traceback"].endswith("ValueError: boom")
    assert detail["scheduled_task"] == {"id": task_id, "name": "nightly crawl"}
    listing = client.get("/runs").get_data(as_text=True)
    assert '<span class="from-schedule">from nightly crawl</span>' in listing  # the list says which schedule
    assert (detail["runtime_s"], detail["retries"], detail["worker"]) == (3.0, 2, "w1@a")
    page = client.get(f"/runs/{cid}").get_data(as_text=True)
    assert "nightly crawl" in page and "ValueError: boom" in page and 'class="badge badge-red state"' in page


def test_results_page_shows_each_state_in_its_colour_with_the_word(app):
    looks = {"SUCCESS": "green", "FAILURE": "red", "PENDING": "orange", "STARTED": "blue", "RETRY": "purple",
             "REVOKED": "gray"}
    add_runs(app, [{"state": s} for s in looks])
    page = api_client(app, "viewer").get("/runs").get_data(as_text=True)
    for state, colour in looks.items():
        assert f'class="badge badge-{colour} state" data-state="{state}"' in page
        assert f"</span> {state}</span>" in page


def test_export_csv_and_json_hold_the_whole_filtered_list(app_on):
    # more than one export batch (1000), each error a would-be spreadsheet formula
    add_runs(app_on, [{"state": "FAILURE", "error": f"=cmd|{i}", "traceback": f"tb {i}"} for i in range(1203)]
             + [{"state": "SUCCESS"} for _ in range(5)])
    client = api_client(app_on, "viewer")
    resp = client.get("/api/runs/export?format=csv&status=FAILURE")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert len(rows) == 1203 and {r["state"] for r in rows} == {"FAILURE"}
    assert all(r["error"].startswith("'=cmd|") for r in rows)  # a spreadsheet shows it as text, never runs it
    data = json.loads(client.get("/api/runs/export?format=json&status=FAILURE").get_data(as_text=True))
    assert len(data) == 1203 and data[0]["traceback"].startswith("tb ")
    assert client.get("/api/runs/export?format=xml").status_code == 400


def test_delete_old_results_is_admin_only_and_never_touches_open_runs(app_on):
    old = NOW - timedelta(days=40)
    add_runs(app_on, [{"state": s, "queued_at": old} for s in ("SUCCESS", "FAILURE", "PENDING", "STARTED", "RETRY")]
             + [{"state": "SUCCESS", "queued_at": NOW}])
    body = {"older_than_days": 30, "states": ["SUCCESS", "FAILURE"]}
    assert api_client(app_on, "operator").post("/api/runs/delete", json=body).status_code == 403
    admin = api_client(app_on, "admin")
    assert admin.post("/api/runs/delete", json={**body, "dry_run": True}).get_json()["would_delete"] == 2
    resp = admin.post("/api/runs/delete", json=body)
    assert resp.status_code == 200 and resp.get_json()["deleted"] == 2
    left = sorted(r["state"] for r in walk(admin))
    assert left == ["PENDING", "RETRY", "STARTED", "SUCCESS"]
    refused = admin.post("/api/runs/delete", json={"older_than_days": 1, "states": ["STARTED"]})
    assert refused.status_code == 400 and refused.get_json()["field"] == "states"
    assert admin.post("/api/runs/delete", data="{not json", content_type="application/json").status_code == 400
    assert admin.post("/api/runs/delete", json={"states": ["SUCCESS"]}).status_code == 400


def test_delete_works_in_batches_and_removes_every_match(app, monkeypatch):
    monkeypatch.setattr(retention, "BATCH_ROWS", 7)
    add_runs(app, [{"state": "SUCCESS", "queued_at": NOW - timedelta(days=2)} for _ in range(50)])
    with app.app_context():
        assert retention.delete_finished(("SUCCESS",), NOW - timedelta(days=1)) == 50
        assert db.session.query(Run).count() == 0


def test_retention_cleanup_keeps_failures_and_recent_successes_by_default(app):
    old = NOW - timedelta(days=31)
    add_runs(app, [{"state": "SUCCESS", "queued_at": old}, {"state": "FAILURE", "queued_at": old},
                   {"state": "REVOKED", "queued_at": old}, {"state": "SUCCESS", "queued_at": NOW - timedelta(days=29)}])
    result = app.test_cli_runner().invoke(args=["runs", "cleanup", "--dry-run"], catch_exceptions=False)
    assert "would delete 1 run(s)" in result.output
    result = app.test_cli_runner().invoke(args=["runs", "cleanup"], catch_exceptions=False)
    assert result.exit_code == 0 and "deleted 1 run(s) in SUCCESS" in result.output
    with app.app_context():
        assert sorted(s for (s,) in db.session.query(Run.state)) == ["FAILURE", "REVOKED", "SUCCESS"]
    assert api_client(app).post("/api/runs/cleanup", json={"include_failures": True}).get_json()["deleted"] == 2


def test_retention_task_runs_on_a_real_worker_and_its_schedule_comes_with_the_migrations(make_app, tmp_path):
    app = make_app()
    with app.app_context():  # a migrated database carries the nightly clean-up schedule
        db.drop_all()
        db.session.execute(db.text("DROP TABLE IF EXISTS alembic_version"))
        db.session.commit()
        upgrade()
        task = db.session.query(Schedule).filter_by(task="cleanup_results").one()
        assert task.enabled and task.kwargs == {"days": 30, "include_failures": False}
        parse_crontab(task.crontab)
        task_id = task.id
        db.session.remove()
    old_success, old_failure = add_runs(app, [{"state": "SUCCESS", "queued_at": NOW - timedelta(days=45)},
                                              {"state": "FAILURE", "queued_at": NOW - timedelta(days=45)}])
    start_worker(app)
    resp = api_client(app).post(f"/api/tasks/{task_id}/run")
    assert resp.status_code == 200, resp.get_json()
    cid = resp.get_json()["celery_task_id"]
    done = wait_for(lambda: (r := run_row(app, cid)) and r.state == "SUCCESS" and r, 60, "the clean-up run to finish")
    assert '"deleted": 1' in done.result or "'deleted': 1" in done.result
    assert run_row(app, old_success) is None and run_row(app, old_failure).state == "FAILURE"


def test_runs_per_minute_counts_successes_and_failures_per_minute_for_the_last_hour(app_on):
    if utcnow().second >= 55:  # the minute must not turn between the rows written and the question asked
        time.sleep(60.5 - utcnow().second)
    minute = utcnow().replace(second=0, microsecond=0)  # this minute, not the module's NOW: the suite takes minutes
    add_runs(app_on, [{"state": "SUCCESS", "finished_at": minute}, {"state": "SUCCESS", "finished_at": minute},
                      {"state": "FAILURE", "finished_at": minute - timedelta(minutes=5)},
                      {"state": "SUCCESS", "finished_at": minute - timedelta(minutes=61)}])
    series = api_client(app_on, "viewer").get("/api/runs/per-minute").get_json()["minutes"]
    assert len(series) == 60 and series[-1]["minute"] == minute.strftime("%Y-%m-%dT%H:%MZ")
    assert (series[-1]["succeeded"], series[-1]["failed"]) == (2, 0)
    assert (series[-6]["succeeded"], series[-6]["failed"]) == (0, 1)
    assert sum(m["succeeded"] + m["failed"] for m in series) == 3


def test_duration_histogram_counts_each_finished_run_once(app_on):
    add_runs(app_on, [{"started_at": NOW - timedelta(seconds=s), "finished_at": NOW} for s in (0.02, 0.3, 7, 4000)])
    with app_on.app_context():
        figures = tally.read()
        assert figures.count == 4 and figures.total_s == pytest.approx(4007.32, abs=0.01)
        buckets = dict(figures.buckets())
        assert buckets[0.05] == 1 and buckets[0.5] == 2 and buckets[10] == 3
        assert buckets[1800] == 3 and buckets[float("inf")] == 4
        add_runs(app_on, [{"started_at": NOW, "finished_at": NOW + timedelta(seconds=1)}])
        assert tally.read().count == 5
        assert tally.read().count == 5  # nothing new: nothing counted twice
