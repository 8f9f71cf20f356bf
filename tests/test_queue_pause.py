"""Pausing a queue on a real worker, on Redis and on RabbitMQ: its messages wait (visible by peek) while the worker
runs other queues, the pause outlives a worker restart, and after a resume they run in the order peek showed."""
from pathlib import Path
from types import SimpleNamespace

import pytest
from playwright.sync_api import expect

from panel.cluster import monitor
from panel.host.processes import WORKER
from tests.helpers import ARTIFACTS, UI_WAIT_MS, Workers, api_client, log_in, make_user, run_row, start_worker, wait_for

HELD = "held"


def queue(client, name):
    return next((q for q in client.get("/api/queues").get_json()["queues"] if q["name"] == name), None)


def send(client, queue_name, *args):
    resp = client.post("/api/registered-tasks/tests.add/send", json={"args": list(args), "queue": queue_name})
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["celery_task_id"]


def ended(app, task_id):
    row = run_row(app, task_id)
    return row is not None and row.status == "completed" and row


def peek_ids(client, name):
    resp = client.get(f"/api/queues/{name}/messages")
    assert resp.status_code == 200, resp.get_json()
    return [m["id"] for m in resp.get_json()["messages"]]


def worker_online(client, pid):
    return any(w["online"] and w["pid"] == pid for w in client.get("/api/workers").get_json()["workers"])


@pytest.fixture
def stack(broker_app):
    """The panel's own worker (one process, so runs start one after another) on `celery` and `held`, watched."""
    app = broker_app
    app.config.update(WORKER_QUEUES=f"celery,{HELD}", WORKER_CONCURRENCY=1)
    app.extensions["supervisor"].grace_s = 15.0  # a warm stop, as a person's restart would be
    stop_monitor = monitor.start(app)
    try:
        pid = start_worker(app)
        viewer = api_client(app, "viewer")
        wait_for(lambda: worker_online(viewer, pid) and (queue(viewer, HELD) or {}).get("consumers"), 30,
                 "the worker listed as the consumer of held")
        yield SimpleNamespace(app=app, op=api_client(app, "operator"), viewer=viewer, pid=pid,
                              worker=queue(viewer, HELD)["consumers"][0])
    finally:
        stop_monitor.set()


def test_a_paused_queue_waits_is_peeked_survives_a_restart_and_runs_in_order_after_resume(stack):
    app, op, viewer = stack.app, stack.op, stack.viewer
    paused = op.post(f"/api/queues/{HELD}/pause")
    body = paused.get_json()
    assert paused.status_code == 200, body
    assert body["paused"] is True and body["applied_by"] == [stack.worker] and "no longer consuming" in str(body)
    assert queue(viewer, HELD)["paused"] is True and queue(viewer, "celery")["paused"] is False
    waiting = [send(op, HELD, i, i) for i in range(3)]
    # The worker stays up and takes other queues: a run sent after the held ones ends while they wait.
    other = send(op, "celery", 1, 1)
    wait_for(lambda: ended(app, other), 30, "a run on the celery queue to end")
    assert all(run_row(app, t).started_at is None for t in waiting)
    assert peek_ids(viewer, HELD) == waiting == peek_ids(viewer, HELD)  # peeked twice: same messages, same order
    assert queue(viewer, HELD)["messages"] == 3

    sup = app.extensions["supervisor"]  # a restart through the supervisor: a new worker process comes online
    sup.stop((WORKER,))
    pid = start_worker(app)
    assert pid != stack.pid
    wait_for(lambda: worker_online(viewer, pid), 30, "the new worker process online")
    panel_log = Path(app.config["INSTANCE_PATH"]) / "logs" / "panel.log"
    wait_for(lambda: f"pause of {HELD} re-applied to {stack.worker}" in panel_log.read_text(), 30,
             "the monitor to re-apply the pause to the new worker")
    worker_log = Path(app.config["INSTANCE_PATH"]) / "logs" / "worker.log"
    assert f"not consuming {HELD}: paused through the panel" in worker_log.read_text()  # skipped from its start
    waiting.append(send(op, HELD, 3, 3))
    other = send(op, "celery", 2, 2)
    wait_for(lambda: ended(app, other), 30, "a run on the celery queue to end after the restart")
    assert all(run_row(app, t).started_at is None for t in waiting), "a paused queue's message ran"
    assert queue(viewer, HELD)["paused"] is True
    order = peek_ids(viewer, HELD)
    assert order == waiting

    resumed = op.post(f"/api/queues/{HELD}/resume")
    assert resumed.status_code == 200 and resumed.get_json()["applied_by"] == [stack.worker], resumed.get_json()
    rows = [wait_for(lambda t=t: ended(app, t), 30, f"held run {t} to end") for t in waiting]
    assert [r.celery_task_id for r in sorted(rows, key=lambda r: r.started_at)] == order
    assert queue(viewer, HELD)["paused"] is False and queue(viewer, HELD)["messages"] == 0


def test_pause_answers_404_for_an_unknown_queue_and_keeps_a_pause_nobody_consumes(make_app):
    app = make_app(WORKER_QUEUES="celery,spare")
    op = api_client(app, "operator")
    assert op.post("/api/queues/nowhere/pause").status_code == 404
    assert op.post("/api/queues/nowhere/resume").status_code == 404
    assert op.get("/api/queues/nowhere/messages").status_code == 404
    assert api_client(app, "viewer").post("/api/queues/spare/pause").status_code == 403
    resp = op.post("/api/queues/spare/pause")
    body = resp.get_json()
    assert resp.status_code == 200 and body["paused"] is True and body["applied_by"] == []
    assert "no online worker consumes it now" in body["message"]
    assert queue(op, "spare")["paused"] is True
    assert op.post("/api/queues/spare/pause").status_code == 200  # again: still one pause
    resp = op.post("/api/queues/spare/resume")
    assert resp.status_code == 200 and resp.get_json()["paused"] is False
    assert queue(op, "spare")["paused"] is False


def test_the_workers_page_pauses_a_queue_shows_its_waiting_messages_and_resumes_it(stack_page):
    """In Chromium: Pause, a run sent later through the form waiting with its ETA, Peek, then Resume."""
    app, base, page = stack_page
    log_in(page, base, "op", "/workers")
    page.wait_for_url(base + "/workers")
    row = page.locator("#queues-body tr[data-queue='celery']")
    expect(row).to_contain_text("▶ Consuming", timeout=UI_WAIT_MS)
    row.get_by_role("button", name="Pause queue celery").click()
    expect(page.locator("#outcome")).to_contain_text("Queue celery paused: 1 of 1", timeout=UI_WAIT_MS)
    expect(row).to_contain_text("❚❚ Paused", timeout=UI_WAIT_MS)
    task_row = page.locator("#types-body tr[data-task='tests.add']")
    task_row.get_by_role("button", name="Use tests.add in the forms below").click()
    page.fill("#send-args", "[4, 5]")
    page.fill("#send-countdown", "-1")
    page.click("#send-form button[type=submit]")
    expect(page.locator("#send-form .field-error[data-field=countdown]")).to_contain_text("must be above 0")
    page.fill("#send-countdown", "600")
    page.fill("#send-priority", "3")
    page.click("#send-form button[type=submit]")
    expect(page.locator("#outcome")).to_contain_text("Sent tests.add (countdown 600 s)", timeout=UI_WAIT_MS)
    page.fill("#send-countdown", "")
    page.fill("#send-args", "[1, 2]")
    page.click("#send-form button[type=submit]")
    expect(page.locator("#outcome")).to_contain_text("Sent tests.add (run ", timeout=UI_WAIT_MS)
    row.get_by_role("button", name="Peek at the waiting messages of celery").click()
    expect(page.locator("#peek-title")).to_contain_text("(❚❚ paused): the next 2 of 2", timeout=UI_WAIT_MS)
    first, second = page.locator("#peek-body tr").nth(0), page.locator("#peek-body tr").nth(1)
    expect(first).to_contain_text("[4, 5]")
    expect(first.locator("td").nth(5)).not_to_have_text("—")   # its ETA
    expect(second).to_contain_text("[1, 2]")
    page.locator("#peek").scroll_into_view_if_needed()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "workers_queue_paused_peek.png"), full_page=True)
    row.get_by_role("button", name="Resume queue celery").click()
    expect(row).to_contain_text("▶ Consuming", timeout=UI_WAIT_MS)
    assert page.errors == []


@pytest.fixture
def stack_page(make_app, tmp_path, serve, browser_page):
    """The panel served on a loopback port with its monitor, one worker on `celery`, and Chromium logged out."""
    app = make_app()
    make_user(app, "op", "operator")
    stop_monitor = monitor.start(app)
    procs = Workers(app, tmp_path)
    base, page = serve(app), browser_page(height=1400)
    try:
        procs.start("w1")
        wait_for(lambda: (queue(api_client(app, "viewer"), "celery") or {}).get("consumers"), 30, "w1 consuming")
        yield app, base, page
    finally:
        stop_monitor.set()
        procs.stop_all()
