"""Lists and exports carry bounded previews of args, kwargs, results and errors; a run's page and JSON the whole."""
import csv
import io
import json
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from panel.runlog.previews import DATA_PREVIEW_CHARS, PROSE_PREVIEW_CHARS
from tests.helpers import GOOD, NOW, UI_WAIT_MS, add_runs, add_task, api_client

HUGE = 10 * 1024 * 1024  # the 10 MB argument
PAGE_MAX_BYTES = 64 * 1024  # a page of 50 runs, whatever one of them holds


@pytest.fixture
def app_on(make_app, backend):
    return make_app(backend)


def seed(app, huge_chars=HUGE, **extra):
    """Ten small runs and, among them, one whose argument and result are huge; (huge run's id, small runs' ids)."""
    small = [{"args": [i, "small"], "kwargs": {"n": i}, "result": f"r{i}", "queued_at": NOW - timedelta(seconds=i),
              **extra} for i in range(10)]
    small_ids = add_runs(app, small)
    [huge_id] = add_runs(app, [{
        "args": ["a" * huge_chars], "kwargs": {"blob": "k" * huge_chars}, "result": "r" * huge_chars,
        "state": "FAILURE", "status": "failed", "error": "ValueError: " + "e" * 100_000,
        "traceback": "Traceback (most recent call last):\n" + "t" * 100_000, "queued_at": NOW - timedelta(seconds=3.5),
        **extra}])
    return huge_id, small_ids


def huge_cut():
    """The `cut` of the huge run's list entry: each cut field with its whole size in bytes (all ASCII here)."""
    return {"args": len(json.dumps(["a" * HUGE])), "kwargs": len(json.dumps({"blob": "k" * HUGE})), "result": HUGE,
            "error": len("ValueError: ") + 100_000}


def by_id(runs):
    return {run["celery_task_id"]: run for run in runs}


def test_a_huge_run_is_cut_in_the_list_and_whole_in_its_own_json(app_on):
    huge_id, small_ids = seed(app_on)
    client = api_client(app_on, "viewer")
    resp = client.get("/api/runs?limit=50")
    assert resp.status_code == 200 and len(resp.get_data()) < PAGE_MAX_BYTES
    listed = by_id(resp.get_json()["runs"])
    huge = listed[huge_id]
    assert huge["cut"] == huge_cut()
    assert huge["args"] == json.dumps(["a" * HUGE])[:DATA_PREVIEW_CHARS]
    assert huge["kwargs"] == '{"blob": "' + "k" * (DATA_PREVIEW_CHARS - 10)
    assert huge["result"] == "r" * DATA_PREVIEW_CHARS
    assert huge["error"] == ("ValueError: " + "e" * PROSE_PREVIEW_CHARS)[:PROSE_PREVIEW_CHARS]
    assert huge["args_known"] is True and "traceback" not in huge

    whole = client.get(f"/api/runs/{huge_id}").get_json()
    assert whole["cut"] == {} and whole["args"] == ["a" * HUGE] and whole["kwargs"] == {"blob": "k" * HUGE}
    assert whole["result"] == "r" * HUGE and len(whole["traceback"]) > 100_000


def test_a_small_run_is_not_cut_and_its_values_stay_lists_and_dicts(app_on):
    _, small_ids = seed(app_on)
    listed = by_id(api_client(app_on, "viewer").get("/api/runs?limit=50").get_json()["runs"])
    for i, cid in enumerate(small_ids):
        assert listed[cid]["cut"] == {}
        assert (listed[cid]["args"], listed[cid]["kwargs"], listed[cid]["result"]) == ([i, "small"], {"n": i}, f"r{i}")


def test_the_bound_counts_characters_not_bytes_and_one_more_is_cut(app_on):
    at_bound = "é" * DATA_PREVIEW_CHARS  # 200 characters, 400 bytes: whole
    over = "é" * (DATA_PREVIEW_CHARS + 1)
    repr_args = "('a repr', 'the worker showed')"  # a run recorded from task events: a string, whole
    ids = add_runs(app_on, [{"result": at_bound, "args": repr_args}, {"result": over, "args": [None], "kwargs": None}])
    listed = by_id(api_client(app_on, "viewer").get("/api/runs").get_json()["runs"])
    assert listed[ids[0]]["result"] == at_bound and listed[ids[0]]["args"] == repr_args
    assert listed[ids[0]]["cut"] == {}
    assert listed[ids[1]]["result"] == at_bound and listed[ids[1]]["cut"] == {"result": 2 * len(over)}
    assert listed[ids[1]]["args"] == [None] and listed[ids[1]]["args_known"] is False  # no kwargs recorded


def test_exports_cut_the_huge_run_and_keep_small_ones_whole(app_on):
    huge_id, small_ids = seed(app_on)
    client = api_client(app_on, "viewer")
    resp = client.get("/api/runs/export?format=csv")
    assert resp.status_code == 200 and len(resp.get_data()) < PAGE_MAX_BYTES
    lines = {line["celery_task_id"]: line for line in csv.DictReader(io.StringIO(resp.get_data(as_text=True)))}
    huge = lines[huge_id]
    assert json.loads(huge["cut"]) == huge_cut()
    assert huge["args"] == '["' + "a" * (DATA_PREVIEW_CHARS - 2) and huge["result"] == "r" * DATA_PREVIEW_CHARS
    assert lines[small_ids[1]]["cut"] == "" and json.loads(lines[small_ids[1]]["args"]) == [1, "small"]

    resp = client.get("/api/runs/export?format=json")
    assert len(resp.get_data()) < PAGE_MAX_BYTES
    exported = by_id(json.loads(resp.get_data(as_text=True)))
    assert exported[huge_id]["cut"]["traceback"] > 100_000
    tb = "Traceback (most recent call last):\n" + "t" * 100_000
    assert exported[huge_id]["traceback"] == tb[:PROSE_PREVIEW_CHARS]
    assert exported[small_ids[2]]["cut"] == {} and exported[small_ids[2]]["kwargs"] == {"n": 2}


def test_the_schedules_runs_are_cut_too(app):
    schedule_id = add_task(app, **GOOD)
    huge_id, small_ids = seed(app, huge_chars=1024 * 1024, scheduled_task_id=schedule_id)
    resp = api_client(app, "viewer").get(f"/api/tasks/{schedule_id}/runs")
    assert resp.status_code == 200 and len(resp.get_data()) < PAGE_MAX_BYTES
    runs = by_id(resp.get_json()["runs"])
    assert set(runs[huge_id]["cut"]) == {"args", "kwargs", "result", "error", "traceback"}
    assert runs[small_ids[0]]["cut"] == {} and runs[small_ids[0]]["args"] == [0, "small"]


def test_the_results_page_shows_the_preview_says_cut_and_links_the_whole(app):
    huge_id, _ = seed(app)
    resp = api_client(app, "viewer").get("/runs")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and len(resp.get_data()) < 2 * PAGE_MAX_BYTES
    assert html.count('class="cut-note"') == 1
    assert f'<a class="cut-note" href="/runs/{huge_id}"' in html and "✂ cut, 21.0 MB" in html
    whole = api_client(app, "viewer").get(f"/runs/{huge_id}").get_data(as_text=True)
    assert "a" * HUGE in whole and "r" * HUGE in whole


def test_a_cut_row_in_the_browser_shows_its_preview_and_opens_the_whole_run(logged_in, app):
    huge_id, _ = seed(app, huge_chars=50_000)
    page = logged_in(app, "reader", "viewer", "/runs")
    note = page.locator(f'a.cut-note[href="/runs/{huge_id}"]')
    expect(note).to_have_text("✂ cut, 100.0 KB", timeout=UI_WAIT_MS)
    cell = note.locator("xpath=..")
    expect(cell).to_contain_text('["aaaa')
    assert cell.evaluate("el => el.title").endswith("…")
    page.locator("#runs-table").screenshot(path="/tmp/parts/runs_cut.png")
    note.click()
    expect(page.locator("#run-args")).to_contain_text("a" * 1000, timeout=UI_WAIT_MS)
    assert page.locator("#run-args").inner_text().count("a") >= 50_000
    assert page.errors == []
