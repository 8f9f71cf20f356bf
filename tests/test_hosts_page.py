"""The dashboard's host cards in headless Chromium: two real supervisord processes (each with its own password on a
loopback port) as the hosts of SUPERVISORS, their programs' states and PIDs on the page, Start / Stop from a card,
a viewer's disabled buttons, a host refusing the credentials, and no password anywhere in the page."""
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from panel import background
from tests.helpers import ARTIFACTS, UI_WAIT_MS, log_in, make_user, wait_for
from tests.supervisord_harness import PASSWORDS, PROGRAMS, SupervisordHost, worker_command

READY_WAIT_S = 90  # a real worker's start on two shared cores, with a CI run beside it
STAND_IN = "sleep 600"  # a program the cards show like a worker, and that starts in a second
AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"
AXE_RUN = """async () => (await axe.run(document.getElementById('hosts-card'), {resultTypes: ['violations']}))
  .violations.filter(v => v.impact === 'serious' || v.impact === 'critical').map(v => v.id + ': ' + v.help)"""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, redis_server):
    """Two hosts: alpha runs a worker and a Beat, beta only a worker (stand-ins); all RUNNING before the tests."""
    hosts = {}
    try:
        for name in ("alpha", "beta"):
            programs = {PROGRAMS["worker"]: STAND_IN}
            if name == "alpha":
                programs[PROGRAMS["beat"]] = STAND_IN
            folder = tmp_path_factory.mktemp(f"supervisord-page-{name}")
            hosts[name] = SupervisordHost(folder, name, redis_server.url, programs)
        for host in hosts.values():
            for program in ([PROGRAMS["worker"], PROGRAMS["beat"]] if host.name == "alpha" else [PROGRAMS["worker"]]):
                wait_for(lambda h=host, p=program: h.running(p), 30, f"{program} RUNNING on {host.name}")
        yield hosts
    finally:
        for host in hosts.values():
            host.stop()


def pane_app(make_app, urls, **extra):
    return make_app(SUPERVISORS=dict(urls), SUPERVISOR_PROGRAMS=dict(PROGRAMS), SUPERVISOR_TIMEOUT_S=2.0, **extra)


def urls_of(hosts):
    return {h.name: h.url for h in hosts}


def open_dashboard(browser_page, serve, app, role="operator", width=1200):
    """A Chromium page logged in as a user of that role, the host cards drawn."""
    make_user(app, role, role)
    page = browser_page(width, 900)
    log_in(page, serve(app), role)
    expect(page.locator("#hosts-card")).to_be_visible(timeout=UI_WAIT_MS)
    return page


def card(page, host):
    return page.locator(f"#hosts-list [data-host={host}]")


def row(page, host, program):
    return card(page, host).locator(f"[data-program={program}]")


def shot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def assert_no_password(page):
    html = page.content()
    for secret in (*PASSWORDS.values(), "not-the-Pa55word"):
        assert secret not in html


def test_each_host_has_a_card_with_supervisors_states_and_pids(browser_page, serve, make_app, fleet):
    app = pane_app(make_app, urls_of(fleet.values()))
    page = open_dashboard(browser_page, serve, app)
    expect(page.locator("#hosts-list [data-host]")).to_have_count(2)
    for host, programs in (("alpha", ("worker", "beat")), ("beta", ("worker",))):
        expect(card(page, host).locator("h3")).to_have_text(host)
        expect(card(page, host).locator(".reach")).to_have_text("✓ Reachable")
        expect(card(page, host).locator(".reach")).to_have_class(re.compile(r"\bbadge-green\b"))
        expect(card(page, host).locator("[data-program]")).to_have_count(len(programs))
        for program in programs:
            supervisor_name = PROGRAMS[program]
            pid = fleet[host].running(supervisor_name)
            shown = row(page, host, program)
            expect(shown.locator(".program-name")).to_have_text(program)
            expect(shown.locator(".program")).to_have_text(supervisor_name)
            expect(shown.locator(".state")).to_have_text("✓ RUNNING")
            expect(shown.locator(".state")).to_have_class(re.compile(r"\bbadge-green\b"))
            expect(shown.locator(".pid")).to_have_text(f"PID {pid}")
            expect(shown.locator(".uptime")).to_have_text(re.compile(r"^up \d+ (s|min)$"))
            for act in ("start", "stop", "restart"):
                expect(shown.locator(f"[data-act={act}]")).to_be_enabled()
    assert_no_password(page)
    shot(page, "hosts-cards")
    restart = row(page, "alpha", "beat").locator("[data-act=restart]")
    restart.focus()
    restart.evaluate("(b) => { b.dataset.drawnBefore = 'yes'; }")
    page.evaluate("refreshAll()")  # the next poll redraws the cards: the keyboard's focus stays on the same button
    expect(page.locator(":focus:not([data-drawn-before])")).to_have_attribute("data-key", "alpha/beat/restart")
    page.evaluate(AXE.read_text())  # evaluated, not a <script>: the page's CSP allows only its own scripts
    assert page.evaluate(AXE_RUN) == []
    page.set_viewport_size({"width": 390, "height": 900})
    page.wait_for_function("() => window.innerWidth === 390")
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"), "the page scrolls sideways"
    shot(page, "hosts-cards-narrow")
    assert page.errors == []


def test_stop_from_a_card_stops_the_program_and_start_brings_it_back_with_a_new_pid(browser_page, serve, make_app,
                                                                                     fleet):
    beta = fleet["beta"]
    old = beta.running(PROGRAMS["worker"])
    page = open_dashboard(browser_page, serve, pane_app(make_app, urls_of(fleet.values())))
    worker = row(page, "beta", "worker")
    expect(worker.locator(".pid")).to_have_text(f"PID {old}", timeout=UI_WAIT_MS)
    worker.locator("[data-act=stop]").click()
    outcome = page.locator("#outcome[role=status]")
    expect(outcome).to_have_text("worker (celery-worker) on beta: stop done, now STOPPED", timeout=UI_WAIT_MS)
    assert page.dialogs[-1][0] == "confirm" and "Stop worker (celery-worker) on beta?" in page.dialogs[-1][1]
    expect(worker.locator(".state")).to_have_text("■ STOPPED")
    expect(worker.locator(".state")).to_have_class(re.compile(r"\bbadge-gray\b"))
    expect(worker.locator(".pid")).to_have_text("no PID")
    assert beta.client.program(PROGRAMS["worker"])["state"] == "STOPPED"  # supervisord agrees
    expect(row(page, "alpha", "worker").locator(".state")).to_have_text("✓ RUNNING")  # the other host untouched
    shot(page, "hosts-card-stopped")

    worker.locator("[data-act=start]").click()
    expect(outcome).to_have_text("worker (celery-worker) on beta: start done, now RUNNING", timeout=UI_WAIT_MS)
    expect(worker.locator(".state")).to_have_text("✓ RUNNING")
    new = beta.running(PROGRAMS["worker"])
    assert new not in (None, old)
    expect(worker.locator(".pid")).to_have_text(f"PID {new}")
    assert page.errors == []


def test_a_viewer_sees_the_cards_with_every_button_disabled(browser_page, serve, make_app, fleet):
    page = open_dashboard(browser_page, serve, pane_app(make_app, urls_of(fleet.values())), role="viewer")
    expect(row(page, "alpha", "beat").locator(".state")).to_have_text("✓ RUNNING")
    buttons = page.locator("#hosts-list button")
    expect(buttons).to_have_count(9)  # three programs, three buttons each
    for n in range(9):
        expect(buttons.nth(n)).to_be_disabled()


def test_a_host_refusing_the_credentials_is_unreachable_with_the_reason_and_no_password_is_shown(
        browser_page, serve, make_app, fleet):
    alpha = fleet["alpha"]
    wrong = f"http://{alpha.user}:not-the-Pa55word@127.0.0.1:{alpha.port}"
    page = open_dashboard(browser_page, serve, pane_app(make_app, {"alpha": alpha.url, "wrong": wrong}))
    refused = card(page, "wrong")
    expect(refused.locator(".reach")).to_have_text("✕ Unreachable")
    expect(refused.locator(".reach")).to_have_class(re.compile(r"\bbadge-red\b"))
    expect(refused.locator(".host-error")).to_have_text("supervisord on wrong refused the credentials")
    expect(refused.locator("button")).to_have_count(0)
    expect(row(page, "alpha", "worker").locator(".state")).to_have_text("✓ RUNNING")  # the other host stays fine
    assert_no_password(page)
    shot(page, "hosts-card-refused")


def test_without_supervisors_the_hosts_section_stays_hidden(browser_page, serve, make_app):
    app = make_app()
    make_user(app, "op", "operator")
    page = browser_page(1200, 900)
    log_in(page, serve(app), "op")
    expect(page.locator("#overall-badge")).not_to_have_text("Checking...", timeout=UI_WAIT_MS)
    expect(page.locator("#hosts-card")).to_be_hidden()


def test_stop_celery_and_start_celery_say_what_happened_on_each_host(browser_page, serve, make_app, fleet):
    app = pane_app(make_app, urls_of(fleet.values()))
    page = open_dashboard(browser_page, serve, app)
    outcome = page.locator("#outcome")
    page.click("[data-action=stop-celery]")
    expect(outcome).to_contain_text("✓ beta: ", timeout=UI_WAIT_MS)
    lines = outcome.inner_text().splitlines()
    assert [line.split(":")[0] for line in lines[1:]] == ["✓ alpha", "✓ beta"], lines
    assert "now STOPPED" in lines[1] and "now STOPPED" in lines[2], lines
    expect(row(page, "beta", "worker").locator(".state")).to_have_text("■ STOPPED", timeout=UI_WAIT_MS)
    assert fleet["alpha"].client.program(PROGRAMS["beat"])["state"] == "STOPPED"
    shot(page, "hosts-stop-celery")

    page.click("[data-action=start-celery]")
    expect(outcome).to_contain_text("✓ beta: ", timeout=UI_WAIT_MS)
    lines = outcome.inner_text().splitlines()
    assert [line.split(":")[0] for line in lines[1:]] == ["✓ alpha", "✓ beta"], lines
    for host, program in (("alpha", "worker"), ("alpha", "beat"), ("beta", "worker")):
        expect(row(page, host, program).locator(".state")).to_have_text("✓ RUNNING", timeout=UI_WAIT_MS)
        assert fleet[host].running(PROGRAMS[program])


def test_the_celery_node_of_a_real_worker_shows_on_its_hosts_card(browser_page, serve, make_app, redis_server,
                                                                   tmp_path):
    gamma = SupervisordHost(tmp_path / "gamma", "gamma", redis_server.url,
                            {PROGRAMS["worker"]: worker_command("gamma@hosts-test")})
    app = pane_app(make_app, {"gamma": gamma.url})
    duties = background.start(app)  # the cluster monitor: worker events -> nodes
    try:
        wait_for(duties.acting.is_set, 10, "the background duties to start")
        pid = wait_for(lambda: gamma.running(PROGRAMS["worker"]), READY_WAIT_S, "the worker RUNNING on gamma")
        page = open_dashboard(browser_page, serve, app)
        page.select_option("#poll-rate", "2000")
        nodes = card(page, "gamma").locator(".host-nodes")
        expect(nodes).to_have_text("Celery nodes: gamma@hosts-test ● online", timeout=READY_WAIT_S * 1000)
        expect(nodes.locator(".node")).to_have_attribute("title", f"PID {pid}")
        shot(page, "hosts-card-nodes")
    finally:
        duties.stop()
        gamma.stop()
