"""A running run's own progress (a custom state and its meta, written by the task's update_state into the result
backend) in JSON, on its page and in task_manager.py status; and Cancel on a running run's page and row, the rows
refreshed after it. Against the sample project with results ignored, its worker and Beat started by the panel."""
import json
import re
import sys
import threading

import pytest
from playwright.sync_api import expect

from panel.runlog import from_events
from tests.helpers import ARTIFACTS, CELERY, PROJECT, UI_WAIT_MS, api_client, project_call, run_row, tool, wait_for

WAIT_S = 30
STEPS = 60  # at 0.5 s a step: far longer than the test, which cancels it
PROGRESS_TEXT = re.compile(r'^PROGRESS \{"done": (\d+), "total": 60\}$')


@pytest.fixture(params=["redis", "rabbitmq"])
def on_broker(request, make_app, redis_server):
    """A panel attached to the sample project on each broker (results: Redis, or on RabbitMQ the SQL table)."""
    url = redis_server.url if request.param == "redis" else request.getfixturevalue("rabbitmq_url")
    app = make_app(CELERY_APP="proj", CELERY_WORKDIR=str(PROJECT), CELERY_BIN=CELERY, CELERY_BROKER_URL=url,
                   CELERY_WORKER_ARGS="--concurrency 3")
    yield app
    assert "proj" not in sys.modules, "the panel imported the project"


@pytest.fixture
def recording(on_broker, monkeypatch):
    """The attached panel recording from events, its project's worker running with task_ignore_result=True."""
    attached = on_broker
    monkeypatch.setenv("PROJ_IGNORE_RESULT", "1")  # the worker's environment is the panel's, so it reads this
    stop = from_events.start(attached)
    assert api_client(attached, "operator").post("/scheduler/start-celery/").get_json()["status"] == "success"
    yield attached
    stop.set()
    wait_for(lambda: not any(t.name == "run-events" and t.is_alive() for t in threading.enumerate()), 10,
             "the event recorder to stop")


def running(app, task_id):
    return wait_for(lambda: (r := run_row(app, task_id)) and r.status == "running" and r, WAIT_S, "the run to start")


def progress_of(client, task_id, after=-1):
    """The API's progress of the run once its task has reported a step past `after`."""
    def reported():
        progress = client.get(f"/api/runs/{task_id}").get_json()["progress"]
        return progress if progress and progress["meta"]["done"] > after else None
    return wait_for(reported, WAIT_S, f"progress past step {after}")


def test_a_running_tasks_progress_and_meta_show_in_json_on_its_page_and_in_the_cli(recording, logged_in):
    broker = "redis" if recording.config["CELERY_BROKER_URL"].startswith("redis") else "rabbitmq"
    task_id = project_call(recording, "proj.progress", f"[{STEPS}]")
    running(recording, task_id)
    viewer = api_client(recording, "viewer")
    first = progress_of(viewer, task_id)
    assert first["state"] == "PROGRESS" and set(first["meta"]) == {"done", "total"} and first["meta"]["total"] == STEPS
    later = progress_of(viewer, task_id, after=first["meta"]["done"])
    assert later["meta"]["done"] > first["meta"]["done"], "each step the task reports is read again"

    out = tool(recording, "task_manager.py", "status", task_id)
    line = next((x for x in out.stdout.splitlines() if x.strip().startswith("progress:")), None)
    assert out.returncode == 0 and line, out.stdout
    assert re.fullmatch(r'  progress: PROGRESS \{"done": \d+, "total": 60\}', line), line
    as_json = json.loads(tool(recording, "task_manager.py", "--json", "status", task_id).stdout)
    assert as_json["progress"]["state"] == "PROGRESS" and as_json["progress"]["meta"]["total"] == STEPS

    page = logged_in(recording, "ops", "operator", f"/runs/{task_id}")
    shown = page.locator("#run-progress")
    expect(shown).to_have_text(PROGRESS_TEXT, timeout=UI_WAIT_MS)
    step = int(PROGRESS_TEXT.match(shown.inner_text()).group(1))
    expect(shown).not_to_have_text(f'PROGRESS {{"done": {step}, "total": 60}}', timeout=UI_WAIT_MS)  # it follows
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"run-progress-{broker}.png"), full_page=True)

    page.click("#cancel-run")  # the page's own Cancel on a running ad-hoc run (its confirm is accepted)
    expect(page.locator("#cancel-outcome")).to_contain_text("has been cancelled", timeout=UI_WAIT_MS)
    expect(page.locator("#run-status")).to_contain_text("(failed)")
    expect(page.locator("#run-progress")).to_have_count(0)
    expect(page.locator("#cancel-run")).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / f"run-cancelled-{broker}.png"), full_page=True)
    assert viewer.get(f"/api/runs/{task_id}").get_json()["progress"] is None, "only a running run is asked for"


@pytest.mark.parametrize("on_broker", ["redis"], indirect=True)
def test_a_running_run_has_cancel_on_its_row_and_the_rows_refresh_after_a_bulk_cancel(recording, logged_in):
    one, two = (project_call(recording, "proj.slow", "[300]") for _ in range(2))
    running(recording, one), running(recording, two)
    page = logged_in(recording, "ops", "operator", "/runs?task=proj.slow")
    page.evaluate("window.notReloaded = true")
    row_of = {cid: page.locator("#runs-table tbody tr", has=page.locator(f'input[value="{cid}"]'))
              for cid in (one, two)}
    for row in row_of.values():
        expect(row.locator('.state[data-state="STARTED"]')).to_have_count(1)
        expect(row.locator("button.cancel-run")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "runs-cancel-buttons.png"), full_page=True)

    row_of[one].locator("button.cancel-run").click()
    expect(page.locator("#bulk-outcome")).to_contain_text("has been cancelled", timeout=UI_WAIT_MS)
    expect(row_of[one].locator('.state[data-state="STARTED"]')).to_have_count(0)
    expect(row_of[one].locator("button.cancel-run")).to_have_count(0)

    row_of[two].locator("input.run-select").check()
    page.select_option("#bulk-action", "cancel")
    page.click("#bulk-apply")
    expect(page.locator("#bulk-outcome")).to_contain_text("Cancelled 1", timeout=UI_WAIT_MS)
    expect(row_of[two].locator('.state[data-state="STARTED"]')).to_have_count(0)
    assert page.evaluate("window.notReloaded === true"), "the rows changed without a reload"
    expect(row_of[two].locator("time").first).to_have_text(re.compile(r"ago|just now"))  # times read as before
    assert {run_row(recording, cid).status for cid in (one, two)} == {"failed"}
    page.screenshot(path=str(ARTIFACTS / "runs-after-bulk-cancel.png"), full_page=True)
