"""Every page at 1024, 1440 and 390 px, in the light and the dark scheme, in headless Chromium: the page never
scrolls sideways (tables scroll inside their card), badges never wrap, and axe-core finds no serious or critical
accessibility violation. Screenshots of each are kept in tests/artifacts/ (git-ignored)."""
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect

from models import VIEWER, AuditEvent, ProcessEvent, Run, Schedule, db, utcnow
from panel.security import users
from tests.helpers import ARTIFACTS, TEST_PASSWORD, api_client, log_in, requests_so_far

AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = (1024, 1440, 390)
SCHEMES = ("light", "dark")
WAIT_MS = 30_000
RUN_ID = "layout-run-0001"
OVERFLOW = """() => ({scroll: document.documentElement.scrollWidth, inner: window.innerWidth,
  wrapped: [...document.querySelectorAll('.badge')].filter(b => b.offsetParent !== null && b.getClientRects().length > 1
           || (b.offsetParent !== null
               && b.getBoundingClientRect().height > 2.2 * parseFloat(getComputedStyle(b).fontSize)))
           .map(b => b.textContent)})"""
AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => v.id + ' (' + v.impact + '): ' + v.help + ' -> '
              + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '));
}"""

# name: (path, logged in, what shows once the page has drawn)
PAGES = {
    "dashboard": ("/", True, "#tasks-body tr[data-task-id]"),
    "login": ("/login", False, "#username"),
    "runs": ("/runs", True, "#runs-table"),
    "run": (f"/runs/{RUN_ID}", True, "#run-title"),
    "workers": ("/workers", True, "main"),
    "audit": ("/audit", True, "table.grid"),
    "account": ("/account", True, "#current_password"),
    "not-found": ("/runs/no-such-run", True, "main h2"),
    "error": ("/layout-test-boom", True, "main h2"),
}
COVERED = {"/", "/login", "/runs", "/runs/<celery_task_id>", "/workers", "/audit", "/account"}


def boom():
    raise RuntimeError("a view that fails, to show the 500 page")


def seed(now):
    nightly = Schedule(name="Nightly crawl of the whole catalogue", task="crawl_url", args=["https://example.com/a/long/path"],
                       crontab="30 3 * * *", status="completed", run_count=12, last_run_at=now - timedelta(hours=5))
    every = Schedule(name="every five", task="tests.add", args=[1, 2], interval_seconds=300, status="running")
    db.session.add_all([nightly, every])
    db.session.flush()
    db.session.add_all([
        Run(celery_task_id=RUN_ID, task_name="crawl_url", state="FAILURE", status="failed", args=["https://x.test"],
            kwargs={"depth": 2}, worker="celery@a-rather-long-host-name.example.internal", error="ValueError: boom",
            traceback="Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: boom",
            scheduled_task_id=nightly.id, queued_at=now - timedelta(minutes=3), started_at=now - timedelta(minutes=3),
            finished_at=now - timedelta(minutes=2), runtime_s=60.0),
        Run(celery_task_id="layout-run-0002", task_name="tests.add", state="SUCCESS", status="completed", args=[1, 2],
            kwargs={}, result="3", queued_at=now - timedelta(minutes=1), started_at=now - timedelta(minutes=1),
            finished_at=now - timedelta(seconds=59), runtime_s=1.0, scheduled_task_id=every.id),
    ])
    db.session.add(ProcessEvent(program="worker", action="start", outcome="ok", pids=[4242], message="started",
                                cause="request", actor="admin"))
    db.session.add(AuditEvent(actor="admin", source="127.0.0.1", action="api.run_task", target="/api/tasks/1/run",
                              outcome="success", detail="200 Sent"))


@pytest.fixture
def site(app, serve):
    """The app seeded with schedules, runs and events, a failing page for the 500, served on loopback."""
    with app.app_context():
        seed(utcnow())
        users.create("boss", TEST_PASSWORD, "admin")
        db.session.commit()
        db.session.remove()
    app.add_url_rule("/layout-test-boom", "layout_test_boom", boom)
    app.extensions["access"]["layout_test_boom"] = VIEWER
    return serve(app)


def axe_source():
    """axe-core from node_modules (package.json; `make test` runs npm ci): missing is a failure, not a skip."""
    assert AXE.exists(), f"{AXE} is missing: run `npm ci --no-audit --no-fund` (make test does)"
    return AXE.read_text()


def open_in(browser, base, scheme, logged_in):
    context = browser.new_context(viewport={"width": WIDTHS[0], "height": 900}, color_scheme=scheme)
    page = context.new_page()
    page.errors, page.failed = [], []
    page.on("dialog", lambda dialog: dialog.accept())
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.on("response", lambda resp: resp.status >= 400 and page.failed.append(f"{resp.status} {resp.url}"))
    if logged_in:
        log_in(page, base, "boss")
        expect(page.locator("nav.user")).to_contain_text("boss", timeout=WAIT_MS)
    return context, page


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("name", PAGES)
def test_every_page_fits_every_width_and_passes_axe(browser, site, name, scheme):
    path, logged_in, ready = PAGES[name]
    source = axe_source()
    context, page = open_in(browser, site, scheme, logged_in)
    try:
        page.goto(site + path)
        expect(page.locator(ready).first).to_be_visible(timeout=WAIT_MS)
        page.wait_for_load_state("networkidle")
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            page.wait_for_function("w => window.innerWidth === w", arg=width)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"layout-{name}-{width}-{scheme}.png"), full_page=True)
            seen = page.evaluate(OVERFLOW)
            assert seen["scroll"] <= seen["inner"], f"{path} at {width} px ({scheme}) scrolls sideways: {seen}"
            assert seen["wrapped"] == [], f"{path} at {width} px ({scheme}): badges wrap inside: {seen['wrapped']}"
        page.evaluate(source)
        serious = page.evaluate(AXE_RUN)
        assert serious == [], f"{path} ({scheme}): axe-core finds " + "\n".join(serious)
        assert page.errors == [], page.errors
        # Nothing the page loads fails (a favicon 404 is a console error); the error pages' own status aside.
        assert [f for f in page.failed if not f.endswith(path)] == [], page.failed
    finally:
        context.close()


def test_every_html_page_of_the_url_map_is_checked(app):
    pages = {rule.rule for rule in app.url_map.iter_rules()
             if rule.endpoint.startswith("pages.") and "GET" in rule.methods}
    assert pages <= COVERED, f"pages without a layout and accessibility check: {pages - COVERED}"


def test_every_json_error_has_one_shape_and_the_legacy_status_routes_keep_success(app):
    anonymous = app.test_client()
    for path in ("/api/tasks", "/scheduler/celery-status/", "/celery_status"):
        resp = anonymous.get(path)
        body = resp.get_json()
        assert resp.status_code == 401 and body["status"] == "error" and body["message"], (path, body)
        assert body.get("success", False) is False and (("success" in body) == (path == "/celery_status")), body
    for path, code in (("/api/no-such-thing", 404), ("/api/tasks/999999", 404)):
        body = api_client(app).get(path).get_json()
        assert body["status"] == "error" and body["message"] and "success" not in body, (path, body)
    assert api_client(app).delete("/celery_status").get_json() == {
        "status": "error", "success": False, "message": "The method is not allowed for the requested URL."}


def test_html_errors_are_the_panels_page_with_the_navigation_and_a_favicon(app):
    client = api_client(app, "viewer")
    for path, code in (("/no-such-page", 404), ("/runs/no-such-run", 404), ("/audit", 403)):
        resp = client.get(path)
        html = resp.get_data(as_text=True)
        assert resp.status_code == code and resp.mimetype == "text/html", path
        assert f"<h2 id=\"error-title\">{code} · " in html and 'href="/runs">Results</a>' in html, html
        assert 'rel="icon" href="/static/favicon.svg"' in html
    icon = client.get("/static/favicon.svg")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"


def test_progress_of_a_stop_is_readable_from_the_instance_and_gone_after(tmp_path):
    from panel.host import progress
    assert progress.current(tmp_path) is None
    with progress.doing(tmp_path, "stopping", 10.0, running_tasks=2):
        now = progress.current(tmp_path)
        # counts down from the grace
        assert now["action"] == "stopping" and now["running_tasks"] == 2 and 0 < now["grace_left_s"] <= 10
    assert progress.current(tmp_path) is None


def test_the_workers_page_keeps_its_own_pace_until_the_user_chooses_one(browser, site):
    """5 s on the workers page and 30 s on the dashboard by default; a choice made on one holds on both."""
    context, page = open_in(browser, site, "light", logged_in=True)
    try:
        page.goto(site + "/workers")
        expect(page.locator("#poll-rate")).to_have_value("5000")
        page.goto(site + "/")
        expect(page.locator("#poll-rate")).to_have_value("30000")
        page.select_option("#poll-rate", "0")
        page.goto(site + "/workers")
        expect(page.locator("#poll-rate")).to_have_value("0")  # paused, remembered by this browser
        calls = []
        page.on("request", lambda req: "/api/quarantine" in req.url and calls.append(req.url))
        page.clock.install()
        page.reload()
        expect(page.locator("#quarantine-body")).to_have_text("Nothing in quarantine.", timeout=WAIT_MS)
        loaded = len(requests_so_far(page, calls))
        assert loaded >= 1, "the page's own first call was not seen"
        page.clock.run_for(60_000)
        assert len(requests_so_far(page, calls)) == loaded  # paused: a minute passes without a poll
        with page.expect_request(lambda req: "/api/quarantine" in req.url):  # a pace chosen again polls again
            page.select_option("#poll-rate", "5000")
    finally:
        context.close()
