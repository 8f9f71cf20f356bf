"""The workers and queues page in headless Chromium against the real panel, monitor and a worker."""

import pytest
from playwright.sync_api import expect

from panel.cluster import monitor
from tests.helpers import ARTIFACTS, Workers, api_client, log_in, make_user, run_row, wait_for

UI_WAIT_MS = 20_000


@pytest.fixture
def stack(make_app, tmp_path, serve):
    """The panel on a loopback port with its monitor, one worker, and an operator to log in as."""
    app = make_app()
    make_user(app, "op", "operator")
    stop_monitor = monitor.start(app)
    procs = Workers(app, tmp_path)
    base = serve(app)
    try:
        name, _ = procs.start("w1")
        yield app, base, name
    finally:
        stop_monitor.set()
        procs.stop_all()


@pytest.fixture
def page(stack, browser_page):
    return browser_page()


def login(page, base):
    log_in(page, base, "op", "/workers")
    page.wait_for_url(base + "/workers")


def check_detail_and_pool_grow(page, name):
    page.locator(f"#workers-body tr[data-worker='{name}']").get_by_role("button", name=f"Details of {name}").click()
    expect(page.locator("#detail-title")).to_have_text(f"Worker {name}", timeout=UI_WAIT_MS)
    expect(page.locator("#detail-facts")).to_contain_text("prefork × 2")
    expect(page.locator("#live-queues")).to_have_text("celery")
    expect(page.locator("#live-registered")).to_contain_text("tests.add")
    page.click("[data-control=pool-grow]")
    expect(page.locator("#control-reply")).to_contain_text("pool will grow", timeout=UI_WAIT_MS)
    expect(page.locator("#control-reply")).to_have_class("outcome ok")


def check_task_forms(page):
    types = page.locator("#types-body tr[data-task='tests.add']")
    expect(types).to_contain_text("(x, y)")
    types.get_by_role("button", name="Use tests.add in the forms below").click()
    page.fill("#send-args", "[4,")
    page.click("#send-form button[type=submit]")
    expect(page.locator("#send-form .field-error[data-field=args]")).to_contain_text("is not valid JSON")
    page.fill("#send-args", "[4, 5]")
    page.click("#send-form button[type=submit]")
    expect(page.locator("#outcome")).to_contain_text("Sent tests.add (run ", timeout=UI_WAIT_MS)
    page.fill("#rate-limit", "fast")
    page.click("#rate-form button[type=submit]")
    expect(page.locator("#rate-form .field-error[data-field=rate_limit]")).to_contain_text("must look like")


def check_purge(page):
    parked = page.locator("#queues-body tr[data-queue='parked']")
    expect(parked.locator(".queue-count")).to_have_text("1", timeout=UI_WAIT_MS)
    parked.get_by_role("button", name="Purge queue parked").click()
    expect(page.locator("#outcome")).to_have_text("Purged parked: 1 message(s) removed", timeout=UI_WAIT_MS)
    assert page.dialogs[-1][0] == "confirm" and "Purge queue parked?" in page.dialogs[-1][1]
    expect(parked.locator(".queue-count")).to_have_text("0", timeout=UI_WAIT_MS)


def test_workers_page_shows_controls_sends_purges_and_shuts_down(page, stack):
    app, base, name = stack
    operator = api_client(app, "operator")
    operator.post("/api/registered-tasks/tests.add/send", json={"args": [1, 1], "queue": "parked"})
    done = operator.post("/api/registered-tasks/tests.add/send", json={"args": [2, 2]}).get_json()["celery_task_id"]
    wait_for(lambda: (r := run_row(app, done)) and r.state == "SUCCESS", 30, "a finished run for the chart")
    login(page, base)
    row = page.locator(f"#workers-body tr[data-worker='{name}']")
    expect(row.locator(".badge")).to_have_text("● Online", timeout=UI_WAIT_MS)
    expect(row.locator(".badge")).to_have_class("badge badge-green")
    chart = page.locator("#runs-chart")
    expect(chart.locator(".chart-summary")).to_have_text("Last hour: 1 succeeded, 0 failed (times in UTC).",
                                                         timeout=UI_WAIT_MS)
    expect(chart.locator("svg rect.bar-ok")).to_have_count(1)
    expect(chart.locator("table td").first).to_have_text(run_row(app, done).finished_at.strftime("%H:%M"))
    check_detail_and_pool_grow(page, name)
    check_task_forms(page)
    check_purge(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "workers.png"), full_page=True)

    page.click("[data-control=shutdown]")
    assert page.dialogs[-1][0] == "confirm" and f"Shut down {name}?" in page.dialogs[-1][1]
    expect(page.locator("#control-reply")).to_contain_text("Warm shutdown sent", timeout=UI_WAIT_MS)
    expect(row.locator(".badge")).to_have_text("○ Offline", timeout=UI_WAIT_MS)
    expect(row.locator(".badge")).to_have_class("badge badge-red")
    expect(page.locator("#detail-facts .badge")).to_have_text("○ Offline", timeout=UI_WAIT_MS)
    page.screenshot(path=str(ARTIFACTS / "workers-offline.png"), full_page=True)
    assert page.errors == []
