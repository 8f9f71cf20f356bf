"""The dashboard in headless Chromium against the real panel, worker and Beat (screenshots in tests/artifacts/)."""

import pytest
from playwright.sync_api import expect

from panel.host import processes
from panel.host.processes import BEAT, WORKER
from tests.helpers import ARTIFACTS, UI_WAIT_MS, api_client, log_in, make_user, requests_so_far


@pytest.fixture
def served(app, serve):
    """The app on a real loopback port, with an operator to log in as."""
    make_user(app, "op", "operator")
    return app, serve(app)


@pytest.fixture
def page(browser_page, served):
    page = browser_page(1200, 800)
    page.console_warnings = []
    page.on("console", lambda msg: msg.type == "warning" and page.console_warnings.append(msg.text))
    page.base = served[1]
    return page


def login(page, clock=False):
    if clock:
        page.clock.install()
    log_in(page, page.base, "op")
    expect(page.locator("#overall-badge")).not_to_have_text("Checking...", timeout=UI_WAIT_MS)


def shot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def start_all(app):
    results = app.extensions["supervisor"].start()
    assert all(r.ok for r in results.values()), {k: r.log_tail for k, r in results.items()}
    return results


def test_the_page_loads_with_the_right_badges(page, served):
    app, _ = served
    start_all(app)
    login(page)
    expect(page.locator("#overall-badge")).to_have_text("● Running")
    expect(page.locator("#overall-badge")).to_have_class("badge badge-green")
    expect(page.locator("#worker-badge")).to_have_text("✓ Active")
    beat = page.locator("#beat-badge")
    expect(beat).to_have_text("✓ Active")
    pid = processes.scan(app.config["INSTANCE_PATH"])[BEAT][0].pid
    expect(beat).to_have_attribute("title", f"PIDs: {pid}")
    shot(page, "dashboard-running")


def test_stop_celery_then_start_celery_from_the_toolbar(page, served):
    app, _ = served
    start_all(app)
    login(page)
    page.click("[data-action=stop-celery]")
    expect(page.locator("#outcome")).to_contain_text("Stopped 1 worker(s) and 1 beat", timeout=UI_WAIT_MS)
    assert page.dialogs[0][0] == "confirm" and "Stop Celery?" in page.dialogs[0][1]
    expect(page.locator("#overall-badge")).to_have_text("■ Stopped")
    expect(page.locator("#overall-badge")).to_have_class("badge badge-red")
    expect(page.locator("#worker-badge")).to_have_text("○ Inactive")
    expect(page.locator("#worker-badge")).to_have_class("badge badge-gray")
    expect(page.locator("#beat-badge")).to_have_text("⚠️ Stopped")
    assert processes.scan(app.config["INSTANCE_PATH"]) == {WORKER: [], BEAT: []}
    assert any("Celery Beat is not running" in w for w in page.console_warnings)
    shot(page, "dashboard-stopped")

    page.locator("#beat-badge").click()
    assert page.dialogs[-1][0] == "alert" and "./start_celery_beat.sh" in page.dialogs[-1][1]

    page.click("[data-action=start-celery]")
    expect(page.locator("#outcome")).to_contain_text("Worker: started", timeout=UI_WAIT_MS)
    expect(page.locator("#overall-badge")).to_have_text("● Running")
    expect(page.locator("#beat-badge")).to_have_text("✓ Active")
    table = processes.scan(app.config["INSTANCE_PATH"])
    assert len(table[WORKER]) == 1 and len(table[BEAT]) == 1
    beat_pid = str(table[BEAT][0].pid)
    expect(page.locator("#h-beat")).to_have_text(f"✓ running (PID {beat_pid})", timeout=UI_WAIT_MS)
    history = page.locator("#history-body tr")
    expect(history.first).to_contain_text(beat_pid)
    expect(history.first).to_contain_text("start")
    expect(page.locator("#history-body")).to_contain_text("stop")
    assert "op" in history.first.inner_text().split("\t")  # who did it
    shot(page, "dashboard-health-history")


def test_a_stop_that_waits_for_a_running_task_says_stopping_at_once(page, served):
    app, _ = served
    app.extensions["supervisor"].grace_s = 6.0  # the task ignores TERM: the stop waits the whole grace, then kills
    start_all(app)
    client = api_client(app)
    task = client.post("/api/tasks", json={"name": "slow", "task": "tests.sleep_ignoring_term", "args": [300],
                                           "interval_seconds": 36000}).get_json()
    assert client.post(f"/api/tasks/{task['id']}/run").status_code == 200
    wait_until_started(page, client, task["id"])
    login(page)
    page.click("[data-action=stop-celery]")
    overall = page.locator("#overall-badge")
    expect(overall).to_have_text("… Stopping", timeout=1000)
    expect(page.locator("#worker-badge")).to_have_text("… Stopping", timeout=1000)
    expect(page.locator("#outcome")).to_contain_text("Stopping… waiting for 1 running task(s) to finish, grace left",
                                                    timeout=UI_WAIT_MS)
    shot(page, "dashboard-stopping")
    expect(page.locator("#outcome")).to_contain_text("Stopped 1 worker(s)", timeout=UI_WAIT_MS)
    expect(overall).to_have_text("■ Stopped")
    expect(overall).to_have_class("badge badge-red")


def test_the_poll_pace_is_chosen_by_the_user_and_remembered(page, served):
    app, _ = served
    start_all(app)
    login(page, clock=True)
    expect(page.locator("#poll-rate")).to_have_value("30000")  # 30 s by default
    page.select_option("#poll-rate", "2000")
    expect(page.locator("#beat-badge")).to_have_text("✓ Active")
    app.extensions["supervisor"].stop((BEAT,))
    page.clock.run_for(2_500)
    expect(page.locator("#beat-badge")).to_have_text("⚠️ Stopped", timeout=UI_WAIT_MS)
    page.reload()
    expect(page.locator("#poll-rate")).to_have_value("2000")  # remembered by this browser
    page.select_option("#poll-rate", "0")
    expect(page.locator("#beat-badge")).to_have_text("⚠️ Stopped", timeout=UI_WAIT_MS)
    polls = []
    page.on("request", lambda req: "/celery_status" in req.url and polls.append(req.url))
    start_all(app)
    before = len(requests_so_far(page, polls))
    page.clock.run_for(60_000)
    assert len(requests_so_far(page, polls)) == before, "paused, yet the page asked for the status"
    expect(page.locator("#beat-badge")).to_have_text("⚠️ Stopped")  # paused: no poll, however long
    with page.expect_request(lambda req: "/celery_status" in req.url):  # the counting above is not blind
        page.select_option("#poll-rate", "30000")  # a new pace refreshes at once
    expect(page.locator("#beat-badge")).to_have_text("✓ Active", timeout=UI_WAIT_MS)


def test_the_watchdog_switch_asks_first_and_shows_the_watchdogs_state(page, served):
    app, _ = served
    login(page)
    expect(page.locator("#wd-beat-state")).to_have_text("watchdog off", timeout=UI_WAIT_MS)
    page.check("#wd-beat")
    assert page.dialogs[-1][0] == "confirm" and "Keep beat running?" in page.dialogs[-1][1]
    expect(page.locator("#wd-beat-state")).to_contain_text("STOPPED", timeout=UI_WAIT_MS)
    view = api_client(app, "viewer").get("/api/watchdog").get_json()["watchdog"]
    assert view["beat"]["enabled"] is True and view["worker"]["enabled"] is False
    page.uncheck("#wd-beat")
    expect(page.locator("#wd-beat-state")).to_have_text("watchdog off", timeout=UI_WAIT_MS)


def wait_until_started(page, client, task_id):
    """Bounded: the moment the run log says the schedule's run started (its worker took it)."""
    for _ in range(600):
        found = client.get(f"/api/tasks/{task_id}/runs").get_json()["runs"]
        if found and found[0]["started_at"]:
            return found[0]
        page.wait_for_timeout(50)
    raise AssertionError("the run never started")


def test_a_running_task_is_cancelled_with_its_red_x(page, served):
    app, _ = served
    assert app.extensions["supervisor"].start((WORKER,))[WORKER].ok
    client = api_client(app)
    task = client.post("/api/tasks", json={"name": "stuck", "task": "tests.sleep", "args": [300],
                                           "interval_seconds": 36000}).get_json()
    login(page)
    # only the worker runs: tasks execute, so the overall badge must not say Stopped
    expect(page.locator("#overall-badge")).to_have_text("◐ Worker running, Beat stopped")
    expect(page.locator("#overall-badge")).to_have_class("badge badge-yellow")
    row = page.locator(f"tr[data-task-id='{task['id']}']")
    row.get_by_role("button", name="Run now: stuck").click()
    expect(page.locator("#outcome")).to_have_text("Sent stuck")
    wait_until_started(page, client, task["id"])
    # the page follows the run it sent, not the next 30 s poll: its ✕ shows within two seconds of the start
    expect(row.get_by_role("button", name="Cancel stuck")).to_be_visible(timeout=2000)
    expect(row.locator(".task-status")).to_have_text("⟳ Running")
    expect(row.locator(".task-status")).to_have_class("badge badge-yellow task-status")
    shot(page, "task-running")
    row.get_by_role("button", name="Cancel stuck").click()
    expect(page.locator("#outcome")).to_have_text("Task stuck has been cancelled and marked as failed",
                                                  timeout=UI_WAIT_MS)
    expect(row.locator(".task-status")).to_have_text("✗ Failed")
    expect(row.locator(".task-status")).to_have_class("badge badge-red task-status")
    expect(row.get_by_role("button", name="Cancel stuck")).to_have_count(0)
    shot(page, "task-cancelled")


def test_a_schedule_edit_goes_through_restart_now(page, served):
    app, _ = served
    start_all(app)
    client = api_client(app)
    task = client.post("/api/tasks", json={"name": "hourly", "task": "tests.add", "args": [1, 2],
                                           "interval_seconds": 3600}).get_json()
    old_beat = client.get("/celery_status").get_json()["pids"]
    login(page)
    page.locator(f"tr[data-task-id='{task['id']}']").get_by_role("button", name="Edit hourly").click()
    page.fill("#f-interval", "1800")
    page.click("#task-form button[type=submit]")
    expect(page.locator("#restart-dialog")).to_be_visible()
    expect(page.locator("#restart-dialog")).to_contain_text("picks up schedule changes from the database automatically")
    shot(page, "restart-now-dialog")
    page.click("#restart-now")
    expect(page.locator("#outcome")).to_contain_text("Celery Beat restarted", timeout=UI_WAIT_MS)
    assert ("alert", "✅ Celery Beat restart signal sent successfully!") in page.dialogs
    new_beat = client.get("/celery_status").get_json()["pids"]
    assert new_beat and new_beat != old_beat
    assert client.get(f"/api/tasks/{task['id']}").get_json()["interval_seconds"] == 1800

    app.extensions["supervisor"].stop((BEAT,))
    page.locator(f"tr[data-task-id='{task['id']}']").get_by_role("button", name="Edit hourly").click()
    page.fill("#f-interval", "900")
    page.click("#task-form button[type=submit]")
    page.click("#restart-now")
    expect(page.locator("#outcome")).to_have_text("Celery Beat is not currently running", timeout=UI_WAIT_MS)
    kinds = [d for d in page.dialogs if "not currently running" in d[1] or "To start Celery Beat" in d[1]]
    assert kinds[0][0] == "confirm" and "Would you like to see instructions" in kinds[0][1]
    assert kinds[1][0] == "alert" and "./start_celery_beat.sh" in kinds[1][1]


def test_the_task_form_names_the_bad_field_and_saves_nothing(page, served):
    app, _ = served
    login(page)
    page.click("#new-task")
    page.fill("#f-name", "bad cron")
    page.check("input[name=kind][value=crontab]")
    page.fill("#f-crontab", "61 * * * *")
    page.click("#task-form button[type=submit]")
    error = page.locator('.field-error[data-field="crontab"]')
    expect(error).to_contain_text("crontab: does not parse")
    shot(page, "form-field-error")
    assert api_client(app).get("/api/tasks").get_json()["tasks"] == []


def test_the_30_second_poll_with_the_page_clock_controlled(page, served):
    app, _ = served
    start_all(app)
    polls = []
    page.on("request", lambda req: "/celery_status" in req.url and polls.append(req.url))
    login(page, clock=True)
    expect(page.locator("#beat-badge")).to_have_text("✓ Active")
    loaded = len(requests_so_far(page, polls))
    assert loaded >= 1, "the page's first status call was not seen"
    app.extensions["supervisor"].stop((BEAT,))
    page.clock.run_for(10_000)
    assert len(requests_so_far(page, polls)) == loaded, "a poll before 30 s"
    expect(page.locator("#beat-badge")).to_have_text("✓ Active")  # no poll before 30 s
    with page.expect_request(lambda req: "/celery_status" in req.url):  # the 30 s poll, seen to happen
        page.clock.run_for(21_000)
    expect(page.locator("#beat-badge")).to_have_text("⚠️ Stopped", timeout=UI_WAIT_MS)


def test_a_failing_status_call_shows_error(page, served):
    page.route("**/celery_status", lambda route: route.fulfill(status=500, body="{}"))
    login(page)
    expect(page.locator("#beat-badge")).to_have_text("❌ Error")
    expect(page.locator("#beat-badge")).to_have_class("badge badge-red")
    shot(page, "status-error")


def test_logs_are_shown_on_request_and_controls_work_from_the_keyboard(page, served):
    app, _ = served
    start_all(app)
    login(page)
    page.click("[data-log=worker]")
    expect(page.locator("#log-lines")).to_contain_text("ready", timeout=UI_WAIT_MS)
    page.locator("[data-action=run-all]").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#outcome")).to_have_text("Sent 0 enabled task(s)", timeout=UI_WAIT_MS)
    shot(page, "worker-log")


def test_two_beats_show_as_two_processes_with_both_pids(page, served):
    import subprocess

    from panel.config import ROOT
    app, _ = served
    start_all(app)
    second = subprocess.Popen([str(ROOT / "start_celery_beat.sh"), "--foreground"], cwd=str(ROOT),
                              env=app.extensions["supervisor"].child_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        pids = []
        for _ in range(50):
            pids = [r.pid for r in processes.scan(app.config["INSTANCE_PATH"])[BEAT]]
            if len(pids) == 2:
                break
            page.wait_for_timeout(100)
        login(page)
        badge = page.locator("#beat-badge")
        expect(badge).to_have_text("✓ Active (2 processes)")
        expect(badge).to_have_attribute("title", "PIDs: " + ", ".join(str(p) for p in pids))
        shot(page, "beat-two-processes")
    finally:
        second.terminate()
        second.wait(timeout=15)
