"""Hostile values from users and task senders, rendered on every page in headless Chromium: text, never markup.

Each page is loaded with hostile schedule names, task types, run ids, args, kwargs, results, errors, tracebacks,
worker names, queue names, audit entries and a username, and its live DOM is checked: no attribute or element the
panel does not render, no javascript: URL, no CSP violation (the CSP is the second wall, not the first), and the
hostile strings shown as visible text.
"""
import json
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, quote, unquote, urlencode, urlparse

import pytest
from playwright.sync_api import expect

from models import AuditEvent, BeatClaim, ProcessEvent, Run, Schedule, Watchdog, WorkerNode, db, utcnow
from panel.security import users
from tests.helpers import ARTIFACTS, TEST_PASSWORD, UI_WAIT_MS, log_in

TAG = '"><img src=x onerror=alert(1)>'
ATTR = '" autofocus onfocus="alert(1)'
ATTR_BREAKOUT = 'x" tabindex=0 autofocus onfocus=alert(1) x="'  # ends an attribute, adds a handler (the /runs case)
SCRIPT = "</script><script>alert(1)</script>"
JS_URL = "javascript:alert(1)"
TPL = "{{7*7}}"
SVG = "'><svg onload=alert(1)>"
ADMIN = 'boss"><img src=x onerror=alert(1)>'
SCHEDULE = TAG + " schedule"
RUN_ID = TAG  # a run id from a task sender: no "/", so it is one path segment
RUN_ARGS, RUN_KWARGS = [ATTR_BREAKOUT, SCRIPT, JS_URL], {"k": ATTR, TPL: JS_URL}
RUN_WORKER = ATTR + "@host"
BACKEND_ID = SVG  # a run only the result backend knows
UNKNOWN_ID = TAG + "unknown"  # a run nobody knows
WORKER = ATTR_BREAKOUT + "@" + TAG
QUEUE = SVG + "queue"
PANEL_TASK, WORKER_TASK, SENT_TASK = TAG + ".panel_task", ATTR_BREAKOUT + ".worker_task", ATTR + ".sent"

# Every attribute name the templates and scripts write (aria-* aside); anything else was injected.
ALLOWED_ATTRS = {
    "id", "class", "href", "rel", "type", "name", "value", "content", "charset", "lang", "title", "role", "hidden",
    "disabled", "checked", "selected", "required", "placeholder", "list", "for", "method", "action", "novalidate",
    "min", "max", "colspan", "datetime", "autocomplete", "download", "src", "defer", "open", "tabindex", "autofocus",
    "data-state", "data-status", "data-action", "data-program", "data-log", "data-field", "data-control",
    "data-can-control", "data-task-id", "data-worker", "data-task", "data-queue", "data-loading", "data-filter",
    "data-default",
    "viewbox", "x", "y", "x1", "x2", "y1", "y2", "width", "height", "text-anchor", "xmlns",
}
ONLY_ON = {"autofocus": {"username"}, "tabindex": {"log-lines"}}  # element ids where the templates put them
SCROLLERS = {"table", "section"}  # api.js makes a table or card that scrolls sideways focusable (tabindex 0)
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "link", "script", "body", "div", "header", "h1", "h2", "h3", "a", "nav", "span",
    "form", "input", "button", "main", "section", "p", "table", "caption", "thead", "tbody", "tr", "th", "td", "dl",
    "dt", "dd", "label", "select", "option", "datalist", "fieldset", "legend", "pre", "dialog", "time", "ul", "li",
    "svg", "g", "line", "rect", "text",
}
URL_ATTRS = {"href", "src", "action", "formaction", "xlink:href"}
DOM = """() => [...document.querySelectorAll('*')].map(el => ({
  tag: el.tagName.toLowerCase(), id: el.id, html: el.outerHTML.slice(0, 160),
  inChart: el.closest('#runs-chart') !== null,
  attrs: [...el.attributes].map(a => [a.name.toLowerCase(), a.value])}))"""
WATCH_CSP = """document.addEventListener('securitypolicyviolation',
  e => (window.__csp = window.__csp || []).push(e.violatedDirective + ' ' + e.blockedURI));"""


def json_text(value, indent=None):
    return json.dumps(value, ensure_ascii=False, indent=indent, sort_keys=True)


def seed_schedules_and_runs(now):
    running = Schedule(name=SCHEDULE, task=ATTR, args=[SCRIPT], kwargs={TPL: JS_URL}, interval_seconds=300,
                       status="running", next_run_at=now)
    off = Schedule(name=SVG, task=TPL, interval_seconds=60, enabled=False, disabled_reason=SCRIPT)
    db.session.add_all([running, off])
    db.session.flush()
    db.session.add(BeatClaim(schedule_id=running.id, due_at=now, outcome="sent", claimed_by=TAG, sent_at=now))
    db.session.add_all([
        Run(celery_task_id=RUN_ID, task_name=SVG, state="FAILURE", status="failed", args=RUN_ARGS, kwargs=RUN_KWARGS,
            worker=RUN_WORKER, result=SCRIPT, error=TAG + " failed", traceback="Traceback:\n" + SCRIPT + TPL,
            scheduled_task_id=running.id, queued_at=now, started_at=now, finished_at=now),
        Run(celery_task_id="repr-args-run", task_name=TPL, state="SUCCESS", status="completed", args=repr([SCRIPT]),
            kwargs=repr({"k": ATTR}), result=JS_URL, queued_at=now - timedelta(seconds=1)),
    ])


def seed_cluster_and_audit(now):
    db.session.add(WorkerNode(name=WORKER, hostname=SCRIPT, online=True, last_heartbeat_at=now, heartbeat_freq_s=3600,
                              sw_ver=TPL, sw_sys=ATTR, queues=[QUEUE], registered=[WORKER_TASK],
                              pool={"implementation": TAG, "max-concurrency": 2, "processes": [1, 2]}))
    db.session.add(ProcessEvent(program="worker", action=TAG, outcome=ATTR, pids=[1], message=SCRIPT, cause=JS_URL,
                                actor=TPL))
    db.session.add(Watchdog(program="worker", enabled=True, state="FATAL", reason=TAG))
    db.session.add(AuditEvent(actor=TAG, source=ATTR, action=SCRIPT, target=JS_URL, outcome=SVG,
                              detail=TPL + ATTR_BREAKOUT))


def register_hostile_task_types(app):
    """A task type with a hostile name and docstring in the panel's own registry; a message of another waiting."""
    celery = app.extensions["celery"]
    celery.tasks  # finalized first: a task declared now is registered at once

    def hostile():
        pass
    hostile.__doc__ = SCRIPT
    celery.task(name=PANEL_TASK)(hostile)
    celery.send_task(SENT_TASK, args=[TAG])  # the health card's "oldest queued" (the queue is purged at teardown)
    celery.backend.store_result(BACKEND_ID, TAG, "SUCCESS", traceback=SCRIPT, request=SimpleNamespace(
        task=TPL, args=[ATTR_BREAKOUT], kwargs={"k": SCRIPT}, hostname=ATTR, retries=0, delivery_info=None))


@pytest.fixture
def hostile(app, serve, browser_page):
    """The real app, seeded with hostile values everywhere, served on loopback; a page logged in as the admin."""
    with app.app_context():
        now = utcnow()
        seed_schedules_and_runs(now)
        seed_cluster_and_audit(now)
        users.create(ADMIN, TEST_PASSWORD, "admin")
        db.session.commit()
        register_hostile_task_types(app)
        db.session.remove()
    page = browser_page()
    page.base = serve(app)
    page.console = []
    page.on("console", lambda msg: page.console.append(f"{msg.type}: {msg.text}"))
    page.add_init_script(WATCH_CSP)
    yield page
    app.extensions["celery"].backend.forget(BACKEND_ID)


def log_in_as_admin(page):
    log_in(page, page.base, ADMIN)
    expect(page.locator("nav.user")).to_contain_text(ADMIN, timeout=UI_WAIT_MS)


def assert_nothing_injected(page):
    """The live DOM holds only what the panel renders; no CSP report, no alert."""
    for el in page.evaluate(DOM):
        where = el["html"]
        assert el["tag"] in ALLOWED_TAGS, f"an element the panel never renders: {where}"
        if el["tag"] in ("svg", "g", "line", "rect", "text"):
            assert el["inChart"], f"an SVG element outside the runs chart: {where}"
        for name, value in el["attrs"]:
            assert not name.startswith("on"), f"event handler attribute {name}={value!r} on {where}"
            browser_own = name == "style" and value == ""  # Chromium's autofill leaves an empty one on inputs
            allowed = name in ALLOWED_ATTRS or name.startswith("aria-") or browser_own
            assert allowed, f"injected attribute {name}={value!r} on {where}"
            scroller = name == "tabindex" and value == "0" and el["tag"] in SCROLLERS
            assert name not in ONLY_ON or el["id"] in ONLY_ON[name] or scroller, f"{name} on {where}: not the panel's"
            if name in URL_ATTRS:
                assert not value.strip().lower().startswith("javascript:"), f"{name}={value!r} on {where}"
            if el["tag"] == "script":
                assert name != "src" or value.startswith("/static/"), f"a script from {value!r}"
        if el["tag"] == "script":
            assert any(name == "src" for name, _ in el["attrs"]), "an inline <script> element"
    csp = page.evaluate("window.__csp || []") + [m for m in page.console if "Content Security Policy" in m]
    assert csp == [], f"CSP violations (an injection the CSP stopped): {csp}"
    assert page.dialogs == [], f"a dialog opened: {page.dialogs}"
    assert page.errors == [], f"script errors: {page.errors}"


def shows(page, pairs):
    """Each hostile string is visible text in its element (waited for: several come from JSON polls)."""
    for selector, text in pairs:
        expect(page.locator(selector).first).to_be_visible(timeout=UI_WAIT_MS)
        expect(page.locator(selector).first).to_contain_text(text, use_inner_text=True, timeout=UI_WAIT_MS)


def runs_row_checks(page):
    row = page.locator("#runs-table tbody tr", has_text=SVG)
    assert row.locator("td.args").get_attribute("title") == f"{json_text(RUN_ARGS)} {json_text(RUN_KWARGS)}"
    assert unquote(urlparse(row.locator("a").get_attribute("href")).path) == "/runs/" + RUN_ID


def filtered_checks(page):
    expect(page.locator("#runs-table tbody tr")).to_have_count(1)
    assert page.locator("input[name=task]").input_value() == SVG
    assert page.locator("input[name=worker]").input_value() == RUN_WORKER
    exported = parse_qs(urlparse(page.locator("a:has-text('CSV')").get_attribute("href")).query)
    assert exported == {"task": [SVG], "worker": [RUN_WORKER], "format": ["csv"]}


def dashboard_checks(page):
    options = page.locator("#task-types option").evaluate_all("els => els.map(o => o.value)")
    assert PANEL_TASK in options
    assert page.locator("#tasks-body button.cancel-x").get_attribute("title") == "Cancel " + SCHEDULE


def open_hostile_worker(page):
    expect(page.locator("#workers-body")).to_contain_text(WORKER, timeout=UI_WAIT_MS)
    page.locator("#workers-body tr", has_text=WORKER).locator("button").click()


CASES = {  # name: (path, hostile strings shown as text (selector, text), a step before, checks after)
    "dashboard": ("/", [("#tasks-body", SCHEDULE), ("#tasks-body", ATTR), ("#tasks-body", SCRIPT),
                        ("#history-body", SCRIPT), ("#history-body", TPL), ("#history-body", TAG),
                        ("#h-dispatch", SCHEDULE), ("#h-oldest", SENT_TASK), ("#wd-worker-state", TAG),
                        ("nav.user", ADMIN)], None, dashboard_checks),
    "runs": ("/runs", [("#runs-table", SVG), ("#runs-table", TPL), ("#runs-table", RUN_WORKER),
                       ("#runs-table", RUN_ID[:8]), ("#runs-table", json_text(RUN_ARGS)[:60])], None, runs_row_checks),
    "runs-filtered": ("/runs?" + urlencode({"task": SVG, "worker": RUN_WORKER}),
                      [("#runs-table", SVG), ("#runs-table", RUN_WORKER)], None, filtered_checks),
    "runs-bad-filter": ("/runs?" + urlencode({"since": TAG}), [("p.error", "since"), ("p.error", repr(TAG))], None,
                        None),
    "run": ("/runs/" + quote(RUN_ID, safe=""),
            [("#run-title", SVG), ("#run-args", json_text(ATTR_BREAKOUT)), ("#run-args", SCRIPT), ("#run-args", JS_URL),
             ("#run-kwargs", json_text(ATTR)), ("#run-kwargs", TPL), ("#run-result", SCRIPT), ("#run-error", TAG),
             ("#run-traceback", SCRIPT + TPL), ("dl.detail", SCHEDULE), ("dl.detail", RUN_WORKER),
             ("dl.detail", RUN_ID)], None,
            lambda page: expect(page).to_have_title(f"Run {RUN_ID} · Celery Control Panel")),
    "run-from-backend": ("/runs/" + quote(BACKEND_ID, safe=""),
                         [("#run-title", TPL), ("#run-result", repr(TAG)), ("#run-traceback", SCRIPT),
                          ("dl.detail", ATTR), ("dl.detail", BACKEND_ID), ("main", json_text(ATTR_BREAKOUT)),
                          ("main", json_text(SCRIPT))], None, None),
    "run-unknown": ("/runs/" + quote(UNKNOWN_ID, safe=""), [("body", UNKNOWN_ID)], None, None),  # the 404 says which
    "account": ("/account", [("nav.user", ADMIN)], None, None),
    "workers": ("/workers", [("#workers-body", WORKER), ("#workers-body", SCRIPT), ("#workers-body", QUEUE),
                             ("#types-body", PANEL_TASK), ("#types-body", WORKER_TASK), ("#types-body", SCRIPT),
                             ("#queues-body", QUEUE), ("#detail-title", WORKER), ("#detail-facts", TPL),
                             ("#detail-facts", TAG), ("#detail-facts", SCRIPT)], open_hostile_worker, None),
    "audit": ("/audit", [("table.grid", TAG), ("table.grid", ATTR), ("table.grid", SCRIPT), ("table.grid", JS_URL),
                         ("table.grid", SVG), ("table.grid", TPL + ATTR_BREAKOUT)], None, None),
}
COVERED = {"/", "/login", "/runs", "/runs/<celery_task_id>", "/workers", "/audit", "/account"}


@pytest.mark.parametrize("case", CASES)
def test_hostile_values_render_as_text_on_every_page(hostile, case):
    page = hostile
    path, pairs, before, after = CASES[case]
    log_in_as_admin(page)
    page.goto(page.base + path)
    if before:
        before(page)
    shows(page, pairs)
    if after:
        after(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"hostile-{case}.png"), full_page=True)
    assert_nothing_injected(page)


def test_hostile_next_and_username_on_the_login_page_render_as_text(hostile):
    page = hostile
    page.goto(page.base + "/login?" + urlencode({"next": "/" + TAG}))
    assert page.locator("input[name=next]").input_value() == "/" + TAG
    assert_nothing_injected(page)
    page.fill("#username", ATTR)
    page.fill("#password", "wrong password")
    page.click("button[type=submit]")
    expect(page.locator("p.error")).to_be_visible(timeout=UI_WAIT_MS)
    assert page.locator("#username").input_value() == ATTR
    assert_nothing_injected(page)


def test_every_html_page_of_the_url_map_is_rendered_hostile(app):
    pages = {rule.rule for rule in app.url_map.iter_rules()
             if rule.endpoint.startswith("pages.") and "GET" in rule.methods}
    assert pages <= COVERED, f"pages not rendered with hostile values: {pages - COVERED}"


def test_templates_put_no_unescaped_or_unquoted_value_in_markup():
    """Autoescape only protects quoted attributes; tojson and |safe bypass it (tojson in a title once did)."""
    root = Path(__file__).resolve().parent.parent
    for template in (root / "templates").glob("*.html"):
        text = template.read_text()
        for banned in ("tojson", "|safe", "| safe", "Markup", "autoescape false", "=\"{{ ''"):
            assert banned not in text, f"{template.name}: {banned}"
        assert "={{" not in text.replace(" ", ""), f"{template.name}: an unquoted attribute value"


def test_scripts_never_write_html():
    """The pages' scripts build nodes and set textContent: a value never becomes markup."""
    root = Path(__file__).resolve().parent.parent
    for script in (root / "static").glob("*.js"):
        text = script.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in text, f"{script.name}: {sink}"
