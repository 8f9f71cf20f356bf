"""The results pages in headless Chromium: the state colours, filters, pages, a run's detail, admin deletion."""
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from tests.helpers import ARTIFACTS, NOW, UI_WAIT_MS, add_runs

# Each state's colour: SUCCESS green, FAILURE red, PENDING orange, STARTED blue, RETRY purple, REVOKED gray.
COLOURS = {"SUCCESS": "rgb(31, 122, 58)", "FAILURE": "rgb(180, 35, 24)", "PENDING": "rgb(181, 71, 8)",
           "STARTED": "rgb(29, 78, 216)", "RETRY": "rgb(107, 33, 168)", "REVOKED": "rgb(95, 107, 122)"}


@pytest.fixture
def results_page(logged_in, app):
    """An admin logged in on the real app over loopback, with runs in every state and more than a page."""
    add_runs(app, [{"state": "SUCCESS", "queued_at": NOW - timedelta(days=40, minutes=i), "args": [f"http://site/{i}"],
                    "worker": "w1@alpha", "started_at": NOW, "finished_at": NOW + timedelta(seconds=1)}
                   for i in range(55)])
    add_runs(app, [{"state": s, "queued_at": NOW + timedelta(minutes=n), "task_name": "tests.add", "args": [n, n]}
                   for n, s in enumerate(COLOURS)])
    add_runs(app, [{"state": "FAILURE", "queued_at": NOW + timedelta(minutes=9), "task_name": "tests.always_fails",
                    "error": "RuntimeError: it always fails", "kwargs": {"reason": "demo"},
                    "traceback": "Traceback (most recent call last):\n  File \"tasks.py\", line 3\n"
                                 "RuntimeError: it always fails"}])
    page = logged_in(app, "boss", "admin", "/runs")
    expect(page.locator("#runs-table")).to_be_visible(timeout=UI_WAIT_MS)
    return page


def shot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_every_state_shows_its_colour_and_its_word(results_page):
    page = results_page
    for state, colour in COLOURS.items():
        badge = page.locator(f'.state[data-state="{state}"]').first
        expect(badge).to_contain_text(state)
        assert badge.evaluate("el => getComputedStyle(el).backgroundColor") == colour, state
    shot(page, "runs")


def test_filter_form_pages_and_detail_work_in_the_browser(results_page):
    page = results_page
    expect(page.locator("#runs-table tbody tr")).to_have_count(50)
    page.click("a[rel=next]")
    expect(page.locator("#runs-table tbody tr")).to_have_count(12)  # 62 runs in all
    page.click("text=Clear")
    page.select_option("select[name=status]", "FAILURE")
    page.click("button:has-text('Filter')")
    expect(page.locator("#runs-table tbody tr")).to_have_count(2)
    assert "status=FAILURE" in page.url
    page.fill("input[name=q]", "demo")  # text in the kwargs
    page.click("button:has-text('Filter')")
    expect(page.locator("#runs-table tbody tr")).to_have_count(1)
    page.click("#runs-table tbody a")
    expect(page.locator("#run-traceback")).to_contain_text("RuntimeError: it always fails")
    expect(page.locator("#run-kwargs")).to_contain_text('"reason": "demo"')
    expect(page.locator("dl.detail")).to_contain_text("sent ad hoc")
    shot(page, "run-detail")


def test_a_bad_date_in_the_form_is_named_not_a_crash(results_page):
    page = results_page
    page.goto(page.url.split("/runs")[0] + "/runs?since=yesterday")
    expect(page.locator("p.error")).to_contain_text("since")


def test_admin_deletes_old_successes_after_confirming(results_page):
    page = results_page
    page.fill("input[name=older_than_days]", "30")
    page.click("button:has-text('Delete…')")
    expect(page.locator("#delete-outcome")).to_contain_text("Deleted 55 run(s)", timeout=UI_WAIT_MS)
    page.reload()
    expect(page.locator("#runs-table tbody tr")).to_have_count(7)
