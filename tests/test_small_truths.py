"""Small truths of the run log and its tools: RECEIVED is a filter (and PENDING takes it in), a peek writes args in
one notation, the demo's task types belong to the embedded app only, and a command-line tool that cannot find the
server's database says so in one line and creates nothing."""
import os
import subprocess
import sys
import uuid

import pytest
from playwright.sync_api import expect

from panel.config import ROOT
from tests.helpers import ARTIFACTS, UI_WAIT_MS, add_runs, api_client, tool


def _ids(client, query):
    body = client.get(f"/api/runs?{query}").get_json()
    return {run["celery_task_id"] for run in body["runs"]}


def test_received_is_a_status_filter_and_pending_takes_in_the_received_runs(app, logged_in):
    queued = add_runs(app, [{"state": "PENDING", "status": "pending"}] * 2)
    received = add_runs(app, [{"state": "RECEIVED", "status": "pending"}] * 3)
    add_runs(app, [{"state": "STARTED", "status": "running"}, {"state": "SUCCESS"}])
    viewer = api_client(app, "viewer")
    assert viewer.get("/api/runs?status=RECEIVED").status_code == 200
    assert _ids(viewer, "status=RECEIVED") == set(received)
    assert _ids(viewer, "status=received") == set(received)
    assert _ids(viewer, "status=PENDING") == set(queued + received), "a run a worker received has not started"
    assert _ids(viewer, "status=pending,RECEIVED") == set(queued + received)
    page = viewer.get("/runs?status=RECEIVED")
    assert page.status_code == 200 and page.text.count('data-state="RECEIVED"') == 3
    assert '<option value="RECEIVED"' in page.text, "the results browser offers the filter"
    assert 'badge-orange state" data-state="RECEIVED"' in page.text, "not started yet: PENDING's colour"
    dry = api_client(app, "operator").post("/api/runs/bulk", json={"action": "revoke", "dry_run": True,
                                                                   "filter": {"status": "PENDING"}})
    assert dry.get_json()["matched"] == 5, "a bulk action filters the same way"
    page = logged_in(app, "watcher", "viewer", "/runs")
    page.select_option("select[name=status]", "RECEIVED")
    page.click("button:has-text('Filter')")
    expect(page.locator("#runs-table tbody tr")).to_have_count(3, timeout=UI_WAIT_MS)
    expect(page.locator('#runs-table .state[data-state="RECEIVED"]')).to_have_count(3)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "runs-received-filter.png"), full_page=True)


@pytest.fixture
def queue_name(redis_server):
    """A queue of this test's own that no worker consumes, emptied at the end."""
    from kombu import Connection
    name = f"notation-{uuid.uuid4().hex[:8]}"
    yield name
    with Connection(redis_server.url, connect_timeout=5) as conn:
        conn.default_channel.queue_purge(name)


def test_a_peek_shows_tuple_and_list_args_in_one_notation_json(app, queue_name):
    celery = app.extensions["celery"]
    celery.send_task("tests.add", args=[1, 2], queue=queue_name)
    celery.send_task("tests.add", args=(0, 123), queue=queue_name)
    celery.send_task("tests.add", args=(("a", 1.5), None, True), kwargs={"k": (1,)}, queue=queue_name)
    shown = api_client(app, "viewer").get(f"/api/queues/{queue_name}/messages").get_json()["messages"]
    assert [(m["args"], m["kwargs"]) for m in shown] == [
        ("[1, 2]", "{}"), ("[0, 123]", "{}"), ('[["a", 1.5], null, true]', '{"k": [1]}')]


def test_the_peek_table_shows_every_messages_args_in_one_notation(app, queue_name, logged_in):
    app.config["WORKER_QUEUES"] = f"celery,{queue_name}"  # no worker runs: the messages stay
    celery = app.extensions["celery"]
    celery.send_task("tests.add", args=[1, 2], queue=queue_name)
    celery.send_task("tests.add", args=(0, 123), queue=queue_name)
    page = logged_in(app, "watcher", "viewer", "/workers")
    page.get_by_role("button", name=f"Peek at the waiting messages of {queue_name}").click()
    args_cells = page.locator("#peek-body tr td:nth-child(4)")
    expect(args_cells).to_have_text(["[1, 2]", "[0, 123]"], timeout=UI_WAIT_MS)
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#peek").screenshot(path=str(ARTIFACTS / "peek-one-notation.png"))


def test_a_recorded_repr_of_args_reads_as_json_on_the_pages(app):
    from_events = add_runs(app, [{"args": "(0, 123)", "kwargs": "{'k': (1,)}", "state": "SUCCESS"}])[0]
    cut = add_runs(app, [{"args": "('" + "x" * 50 + "...", "kwargs": "{}"}])[0]
    viewer = api_client(app, "viewer")
    page = viewer.get(f"/runs/{from_events}").text
    assert '<pre class="code" id="run-args">[\n  0,\n  123\n]</pre>' in page
    assert "&#34;k&#34;: [\n    1\n  ]" in page
    listed = viewer.get("/runs").text
    assert "[0, 123]" in listed and "(0, 123)" not in listed
    assert "(&#39;xxxx" in viewer.get(f"/runs/{cut}").text, "a cut repr is not a literal: shown as the worker cut it"


def test_the_demo_task_types_are_offered_only_for_the_embedded_app(app, attached, logged_in):
    embedded = {t["name"] for t in api_client(app, "viewer").get("/api/registered-tasks").get_json()["tasks"]}
    assert {"crawl_url", "cleanup_results"} <= embedded
    assert 'value="crawl_url"' in api_client(app, "viewer").get("/").text
    viewer, operator = api_client(attached, "viewer"), api_client(attached, "operator")
    offered = {t["name"] for t in viewer.get("/api/registered-tasks").get_json()["tasks"]}
    assert not offered & {"crawl_url", "cleanup_results"}, offered
    assert 'value="crawl_url"' not in viewer.get("/").text
    sent = operator.post("/api/registered-tasks/crawl_url/send", json={"args": ["http://example.invalid/"]})
    assert sent.status_code == 404, "the project's workers do not have it: nothing is sent to them"
    refused = operator.post("/api/tasks", json={"name": "crawl", "task": "crawl_url", "interval_seconds": 60})
    assert refused.status_code == 400
    page = logged_in(attached, "ops", "operator", "/")
    with page.expect_response(lambda answer: "/api/registered-tasks" in answer.url, timeout=UI_WAIT_MS):
        page.goto(page.base + "/workers")
    page.wait_for_load_state("networkidle")  # the answer rendered
    expect(page.locator("#task-select option")).to_have_count(0)  # no worker has told us of any
    expect(page.locator("#types-body")).not_to_contain_text("crawl_url")
    page.goto(page.base + "/")
    assert "crawl_url" not in page.locator("#task-types").inner_html()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "attached-dashboard-task-types.png"), full_page=True)


CLI_TOOLS = [("task_manager.py", "status", "123e4567-e89b-12d3-a456-426614174000"),
             ("stop_retries.py", "--all-retries")]


def _bare_tool(cwd, argv, **env):
    """One of scripts/ run from another folder with none of the server's settings (but `env`)."""
    clean = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / argv[0]), *argv[1:]], cwd=cwd,
                          env=dict(clean, **env), capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("argv", CLI_TOOLS, ids=lambda argv: argv[0])
def test_a_cli_without_the_servers_database_says_which_it_tried_in_one_line_and_creates_nothing(tmp_path, argv):
    folder = tmp_path / "elsewhere"
    out = _bare_tool(tmp_path, argv, PANEL_INSTANCE_PATH=str(folder))
    assert out.returncode == 3, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert f"sqlite:///{folder / 'panel.db'}" in lines[0] and "DATABASE_URL" in lines[0] and ".env" in lines[0]
    assert not folder.exists(), "nothing created: no database, no instance folder"


@pytest.mark.parametrize("database, why", [("postgres", "no task_logs table"), ("no_such_panel_db", "does not exist")])
def test_a_cli_pointed_at_a_database_that_is_not_the_panels_says_so_in_one_line(tmp_path, database, why):
    url = f"postgresql://postgres@127.0.0.1:5432/{database}"
    out = _bare_tool(tmp_path, ("task_manager.py", "status", "x"), DATABASE_URL=url,
                     PANEL_INSTANCE_PATH=str(tmp_path / "i"))
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 3 and len(lines) == 1, out
    assert why in lines[0] and url in lines[0] and not (tmp_path / "i").exists(), lines[0]


def test_a_cli_with_the_servers_database_still_works(app):
    done = add_runs(app, [{"state": "SUCCESS", "status": "completed", "result": "3"}])[0]
    out = tool(app, "task_manager.py", "status", done)
    assert out.returncode == 0 and "completed (SUCCESS)" in out.stdout, out
