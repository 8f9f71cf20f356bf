"""Fixtures: a private Redis per session, a RabbitMQ vhost of our own, SQLite and PostgreSQL databases, apps and
Celery stacks, apps served on loopback and Chromium pages logged in to them. Only fixtures: what test modules import
(clients, page helpers, seed data) is in tests/helpers.py."""
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.helpers import (
    ARTIFACTS,
    CELERY,
    CHROMIUM,
    CHROMIUM_ARGS,
    PROJECT,
    LocalSite,
    RedisServer,
    api_client,
    build_app,
    log_in,
    make_user,
    open_page,
    stop_everything,
    wait_for,
)

PG_DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=5"
BACKENDS = ("sqlite", "postgresql")


def _rabbitmqctl(*args):
    out = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"rabbitmqctl {' '.join(args)}: {out.stdout}{out.stderr}"


@pytest.fixture(scope="session")
def rabbitmq_url():
    """A vhost of this test run's own on the machine's RabbitMQ (guest may use it), deleted at the end."""
    vhost = f"ccp-test-{uuid.uuid4().hex[:10]}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_app(request, make_app, redis_server):
    """An app on each broker (results: Redis, or on RabbitMQ the panel's database); its queue emptied at the end."""
    url = redis_server.url if request.param == "redis" else request.getfixturevalue("rabbitmq_url")
    app = make_app(CELERY_BROKER_URL=url)
    yield app
    from amqp.exceptions import NotFound
    from kombu import Connection
    with Connection(url, connect_timeout=5) as conn:
        try:
            conn.default_channel.queue_purge("celery")
        except NotFound:  # RabbitMQ: nobody ever declared it in this vhost
            pass


POISON_WATCHDOG = {"WATCHDOG_INTERVAL_S": 0.3, "WATCHDOG_STABLE_S": 30.0, "WATCHDOG_BACKOFF_S": 0.5,
                   "WATCHDOG_BACKOFF_MAX_S": 2.0, "WATCHDOG_MAX_FAILURES": 5, "WATCHDOG": "worker"}


@pytest.fixture
def guarded(broker_app):
    """The broker_app with its background duties (the watchdog on for the worker), stopped at teardown."""
    from panel import background
    broker_app.config.update(POISON_WATCHDOG)
    handle = background.start(broker_app)
    try:
        wait_for(handle.acting.is_set, 10, "the background duties to start")
        yield broker_app
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


def _throwaway_database():
    """A database of its own on the machine's PostgreSQL, dropped afterwards; fails (never skips) when it is missing."""
    name = f"panel_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(PG_DSN, autocommit=True)
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


@pytest.fixture(scope="session")
def pg_server():
    """The session's throw-away panel database on PostgreSQL (each test leaves its schema as the models make it)."""
    yield from _throwaway_database()


@pytest.fixture
def pg_database():
    """A throw-away PostgreSQL database of one test's own: for tables that must not reach the shared one (a
    project's result store)."""
    yield from _throwaway_database()


def _db_url(backend, folder, pg_server_url):
    return f"sqlite:///{folder / 'panel.db'}" if backend == "sqlite" else pg_server_url


@pytest.fixture
def make_app(tmp_path, redis_server, request):
    """Factory for apps; every worker and Beat an app started is stopped at teardown."""
    apps = []

    def factory(backend="sqlite", **extra):
        folder = tmp_path / f"instance{len(apps)}"
        pg_url = request.getfixturevalue("pg_server") if backend == "postgresql" else None
        app = build_app(folder, _db_url(backend, folder, pg_url), redis_server.url, **extra)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        stop_everything(app)
    _drop_waiting_messages(redis_server.url)


def _drop_waiting_messages(url):
    """Messages a test left in any queue of the suite's private Redis must not run in, or be counted by, the next."""
    from kombu import Connection
    with Connection(url, connect_timeout=5) as conn:
        channel = conn.default_channel
        names = {"celery"}
        for key in channel.client.scan_iter(match="_kombu.binding.*"):  # every queue a test sent to or declared
            exchange = key.decode().removeprefix("_kombu.binding.")
            if not exchange.endswith(("pidbox", "celeryev")):
                names.update(queue for *_, queue in channel.get_table(exchange) if queue)
        for name in names:
            channel.queue_purge(name)


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium through Playwright, one per test module; fails when it is missing."""
    from playwright.sync_api import sync_playwright
    if not Path(CHROMIUM).exists():
        raise RuntimeError("Debian's chromium is missing: apt-get install chromium chromium-driver")
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def serve():
    """serve(app): the app on a free loopback port, a threaded server as Chromium and curl reach it; its base URL.
    Every server started is shut down at teardown."""
    from werkzeug.serving import make_server
    servers = []

    def start(app):
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"
    yield start
    for server in servers:
        server.shutdown()


@pytest.fixture
def browser_page(browser, request):
    """browser_page(width, height): a fresh Chromium page (open_page: dialogs accepted and kept, page errors kept).
    At teardown the end state of each is a screenshot in tests/artifacts/, and its context is closed."""
    opened = []

    def open_one(width=1280, height=900):
        context, page = open_page(browser, width, height)
        opened.append((context, page))
        return page
    yield open_one
    ARTIFACTS.mkdir(exist_ok=True)
    for n, (context, page) in enumerate(opened):
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}{f'-{n}' if n else ''}-end.png"), full_page=True)
        context.close()


@pytest.fixture
def logged_in(serve, browser_page):
    """logged_in(app, user, role, next_path="/", width, height): the app served on loopback, a user of that role made,
    and a Chromium page logged in as them on the login form (page.base: the served URL)."""
    def open_as(app, user, role, next_path="/", **size):
        make_user(app, user, role)
        page = browser_page(**size)
        page.base = serve(app)
        log_in(page, page.base, user, next_path)
        return page
    return open_as


@pytest.fixture
def attached(make_app):
    """A panel attached to the sample project (tests/sample_project); the project's module is never imported here."""
    app = make_app(CELERY_APP="proj", CELERY_WORKDIR=str(PROJECT), CELERY_BIN=CELERY,
                   CELERY_WORKER_ARGS="--concurrency 3")
    yield app
    assert "proj" not in sys.modules and "proj.celery" not in sys.modules, "the panel imported the project"


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return api_client(app)


@pytest.fixture
def site():
    server = LocalSite()
    yield server
    server.stop()


def pytest_terminal_summary(terminalreporter):
    """The fault run's table: each fault injected into real processes, and what the panel did."""
    from tests.helpers import FAULTS
    if not FAULTS:
        return
    terminalreporter.section("faults injected and what happened (docs/faults.md)")
    width = max(len(fault) for fault, _ in FAULTS)
    for fault, outcome in FAULTS:
        terminalreporter.write_line(f"{fault:<{width}}  | {outcome}")
