"""Bulk actions over a filter: counted by a dry run, capped, revoke and cancel end rows, delete is admin-only."""
import uuid
from datetime import timedelta

import pytest

from models import Run, db
from panel.host.processes import WORKER
from panel.security import audit
from panel.web.runs import CONFIRMED
from tests.helpers import NOW, add_runs, api_client, run_row, start_worker, wait_for

PARKED = "parked"  # a queue no worker consumes until the test says so


def bulk(client, action, flt=None, **extra):
    return client.post("/api/runs/bulk", json={"action": action, "filter": flt or {}, **extra})


def _audited(app, action):
    """The newest audit record of this action, or None."""
    with app.app_context():
        found = audit.events(limit=1, action=action)
        db.session.remove()
    return found[0] if found else None


def send_parked(app, n):
    celery = app.extensions["celery"]
    ids = [celery.send_task("tests.add", args=[i, i], queue=PARKED).id for i in range(n)]
    for cid in ids:
        wait_for(lambda cid=cid: run_row(app, cid), 5, "the parked run's row")
    return ids


def test_bulk_revoke_of_a_parked_queue_after_a_dry_run_and_a_worker_started_on_it_runs_none(make_app):
    app = make_app()
    client = api_client(app, "operator")
    start_worker(app)  # consumes "celery" only: it takes the revoke, and keeps it in its --statedb
    done = app.extensions["celery"].send_task("tests.add", args=[2, 2]).id
    wait_for(lambda: run_row(app, done).status == "completed", 30, "the default queue's run")
    parked = send_parked(app, 6)

    preview = bulk(client, "revoke", {"status": "PENDING"}, dry_run=True).get_json()
    assert (preview["matched"], preview["applies"], preview["done"], preview["dry_run"]) == (6, 6, 0, True)
    assert all(run_row(app, cid).status == "pending" for cid in parked)  # a dry run changes nothing

    resp = bulk(client, "revoke", {"status": "PENDING"})
    body = resp.get_json()
    assert resp.status_code == 200, body
    assert (body["matched"], body["applies"], body["done"]) == (6, 6, 6)
    for cid in parked:
        row = run_row(app, cid)
        assert (row.status, row.state) == ("failed", "REVOKED") and "Revoked by test-operator" in row.error
    assert run_row(app, done).state == "SUCCESS"  # not matched: untouched
    # answered once the revokes were sent and the rows ended: the worker's acknowledgement follows in the audit log
    node = app.extensions["supervisor"].nodename
    assert body["acknowledged_by"] is None and "follows in the audit log" in body["message"], body
    confirmed = wait_for(lambda: _audited(app, CONFIRMED), 30, "the acknowledgement in the audit log")
    assert confirmed.actor == "test-operator" and confirmed.outcome == "success"
    assert confirmed.detail == f"revoke of 6 run(s) acknowledged by {node}", confirmed.detail
    waited_for = send_parked(app, 2)  # with confirm, the answer names the workers that took it
    body = bulk(client, "revoke", {"status": "PENDING"}, confirm=True).get_json()
    assert (body["done"], body["acknowledged_by"]) == (2, [node]) and "audit" not in body["message"], body
    parked += waited_for

    supervisor = app.extensions["supervisor"]
    supervisor.stop((WORKER,))
    app.config["WORKER_QUEUES"] = f"celery,{PARKED}"  # the same worker (its state file) now takes the parked queue
    start_worker(app)
    # The messages were taken out of the parked queue before the revoke: a run sent behind them is the first
    # the worker gets there, and when it has run, none of the six has.
    sentinel = app.extensions["celery"].send_task("tests.add", args=[3, 3], queue=PARKED).id
    wait_for(lambda: (r := run_row(app, sentinel)) and r.status == "completed", 30, "the run sent behind them")
    log = supervisor.log_path("worker").read_text()
    reached = [cid for cid in parked if f"tests.add[{cid}]" in log]  # received, or discarded as revoked
    assert reached == [], "revoked runs reached the worker"
    for cid in parked:
        row = run_row(app, cid)
        assert row.state == "REVOKED" and row.started_at is None and row.result is None


def test_bulk_cancel_of_selected_ids_ends_only_those(make_app):
    app = make_app()
    client = api_client(app, "operator")
    parked = send_parked(app, 4)
    body = bulk(client, "cancel", {"task": "tests.add"}, ids=parked[:2]).get_json()
    assert (body["matched"], body["applies"], body["done"]) == (2, 2, 2), body
    assert [run_row(app, cid).error for cid in parked] == ["Task cancelled manually"] * 2 + [None, None]


def test_a_bulk_request_over_the_cap_is_refused_naming_filter_and_changes_nothing(make_app):
    app = make_app(BULK_MAX_RUNS=3)
    client = api_client(app, "admin")
    ids = add_runs(app, [{} for _ in range(5)])
    for dry_run in (True, False):
        resp = bulk(client, "delete", {"status": "SUCCESS"}, dry_run=dry_run)
        body = resp.get_json()
        assert resp.status_code == 400 and body["status"] == "error" and body["field"] == "filter"
        assert "5 runs" in body["message"] and "3" in body["message"] and "narrow" in body["message"]
    assert all(run_row(app, cid) for cid in ids)
    narrowed = bulk(client, "delete", {"status": "SUCCESS"}, ids=ids[:3]).get_json()
    assert narrowed["done"] == 3 and [run_row(app, cid) is None for cid in ids] == [True] * 3 + [False] * 2


def test_delete_is_refused_for_an_operator_with_403_in_the_error_shape(app):
    ids = add_runs(app, [{}])
    resp = bulk(api_client(app, "operator"), "delete", {"status": "SUCCESS"})
    assert resp.status_code == 403
    assert resp.get_json()["status"] == "error" and "admin" in resp.get_json()["message"]
    assert run_row(app, ids[0]) is not None


def test_delete_is_refused_when_the_filter_matches_open_runs_and_takes_only_finished_ones(app):
    client = api_client(app, "admin")
    open_ids = add_runs(app, [{"state": "PENDING", "status": "pending"}, {"state": "STARTED", "status": "running"}])
    finished = add_runs(app, [{"state": s, "status": st} for s, st in
                              (("SUCCESS", "completed"), ("FAILURE", "failed"), ("REVOKED", "failed"))])
    resp = bulk(client, "delete")
    assert resp.status_code == 400 and resp.get_json()["field"] == "filter"
    assert "2 run(s) still queued" in resp.get_json()["message"]
    assert all(run_row(app, cid) for cid in open_ids + finished)
    body = bulk(client, "delete", {"status": "SUCCESS,FAILURE,REVOKED"}).get_json()
    assert (body["matched"], body["done"]) == (3, 3)
    assert [run_row(app, cid) is None for cid in open_ids + finished] == [False, False, True, True, True]


@pytest.mark.parametrize("action, applies", [("retry", 2), ("revoke", 1), ("cancel", 2), ("delete", 2)])
def test_a_dry_run_counts_the_runs_each_action_applies_to(app, action, applies):
    add_runs(app, [{"state": "SUCCESS", "status": "completed"}, {"state": "FAILURE", "status": "failed"},
                   {"state": "RETRY", "status": "pending"}, {"state": "STARTED", "status": "running"}])
    client = api_client(app, "admin")
    flt = {} if action != "delete" else {"status": "SUCCESS,FAILURE"}
    body = bulk(client, action, flt, dry_run=True).get_json()
    assert body["applies"] == applies and body["done"] == 0 and "dry run" in body["message"]
    with app.app_context():
        assert db.session.query(Run).count() == 4


def test_a_bad_bulk_request_names_its_field(app):
    client = api_client(app, "operator")
    assert bulk(client, "explode").get_json()["field"] == "action"
    assert bulk(client, "retry", {"status": "DONE"}).get_json()["field"] == "filter.status"  # its path in the body
    dated = bulk(client, "retry", {"since": "yesterday"}).get_json()
    assert dated["field"] == "filter.since", dated  # a rule of the filter's own, named with the path too
    assert bulk(client, "retry", {"since": "2026-01-02", "until": "2026-01-01"}).get_json()["field"] == "filter.until"
    assert bulk(client, "retry", {"stauts": "FAILURE"}).get_json()["field"] == "filter.stauts"
    too_many = bulk(client, "retry", ids=[str(uuid.uuid4()) for _ in range(501)])
    assert too_many.status_code == 400 and too_many.get_json()["field"] == "ids"


def test_bulk_delete_keeps_the_newest_runs_outside_the_filter(app):
    old = add_runs(app, [{"queued_at": NOW.replace(year=NOW.year - 1)} for _ in range(3)])
    new = add_runs(app, [{} for _ in range(2)])
    until = NOW.replace(year=NOW.year - 1).date().isoformat()
    body = bulk(api_client(app, "admin"), "delete", {"until": until, "status": "SUCCESS"}).get_json()
    assert body["done"] == 3
    assert [run_row(app, cid) is None for cid in old + new] == [True] * 3 + [False] * 2


@pytest.fixture
def runs_in_browser(logged_in, app):
    """An admin logged in on the real app over loopback (Chromium), with finished and queued runs."""
    from playwright.sync_api import expect
    add_runs(app, [{"state": "SUCCESS", "queued_at": NOW - timedelta(minutes=i), "task_name": "tests.add",
                    "args": [i, i], "started_at": NOW, "finished_at": NOW, "runtime_s": i / 10} for i in range(6)])
    add_runs(app, [{"state": "PENDING", "status": "pending", "queued_at": NOW + timedelta(minutes=i),
                    "task_name": "tests.add", "args": [i, 0]} for i in range(3)])
    page = logged_in(app, "boss", "admin", "/runs")
    expect(page.locator("#bulk-bar")).to_be_visible(timeout=10_000)
    return page


def test_selected_rows_are_acted_on_after_a_confirm_naming_the_count_and_action(runs_in_browser, app):
    from playwright.sync_api import expect

    from tests.helpers import ARTIFACTS
    page = runs_in_browser
    pending = page.locator("#runs-table tbody tr", has=page.locator('.state[data-state="PENDING"]'))
    expect(pending).to_have_count(3)
    ids = [pending.nth(i).locator(".run-select").get_attribute("value") for i in range(2)]
    for i in range(2):
        pending.nth(i).locator(".run-select").check()
    expect(page.locator("#bulk-selected")).to_have_text("2 run(s) selected")
    page.select_option("#bulk-action", "cancel")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "runs-bulk-selection.png"), full_page=True)
    page.click("#bulk-apply")
    expect(page.locator("#bulk-outcome")).to_contain_text("Cancelled 2")
    assert page.dialogs == [("confirm", "Cancel 2 run(s)?")]
    assert [run_row(app, cid).error for cid in ids] == ["Task cancelled manually"] * 2
    page.check("#bulk-all")
    expect(page.locator("#bulk-all-label")).to_have_text("all 9 run(s) matching this filter")
    assert page.errors == []


def test_a_run_page_lists_its_retries_and_the_retry_links_back(runs_in_browser, app):
    from playwright.sync_api import expect

    from tests.helpers import ARTIFACTS
    original = add_runs(app, [{"state": "FAILURE", "status": "failed", "task_name": "tests.add", "args": ["a", 1],
                               "error": "TypeError: can only concatenate str", "started_at": NOW,
                               "finished_at": NOW + timedelta(seconds=2), "runtime_s": 2.0}])[0]
    retries = add_runs(app, [{"retry_of": original, "queued_at": NOW + timedelta(minutes=m), "task_name": "tests.add",
                              "args": ["a", 1]} for m in (1, 2)])
    page = runs_in_browser
    page.goto(f"{page.base}/runs/{original}")
    links = page.locator("#run-retried-by li a")
    expect(links).to_have_count(2)
    assert [links.nth(i).text_content() for i in range(2)] == retries
    expect(page.locator("#retry-run")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "run-with-retries.png"), full_page=True)
    links.first.click()
    expect(page.locator("#run-retry-of a")).to_have_text(original)
    expect(page.locator("#run-retried-by")).to_have_text("— (never retried)")
    assert page.errors == []
