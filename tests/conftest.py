"""Fixtures: a private Redis per session, a RabbitMQ vhost of our own, SQLite and PostgreSQL databases, apps and
Celery stacks."""
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from app import create_app
from models import db
from panel.config import default_result_backend
from panel.host.processes import KINDS
from tests.helpers import LocalSite, RedisServer

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


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_server():
    """A throw-away database on the machine's PostgreSQL; fails (never skips) when it is missing."""
    name = f"panel_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(PG_DSN, autocommit=True)
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    admin.close()


def _db_url(backend, folder, pg_server_url):
    return f"sqlite:///{folder / 'panel.db'}" if backend == "sqlite" else pg_server_url


def build_app(folder, db_url, broker_url, **extra):
    """An app on its own instance folder with a fresh schema."""
    config = {
        "INSTANCE_PATH": str(folder),
        "SQLALCHEMY_DATABASE_URI": db_url,
        "CELERY_BROKER_URL": broker_url,
        "CELERY_RESULT_BACKEND": default_result_backend(broker_url, db_url),
        "CELERY_IMPORTS": "tests.sample_tasks",
        "STOP_GRACE_S": 3.0,
        "START_TIMEOUT_S": 30.0,
        "TESTING": True,
        "API_CHECK_RESPONSES": True,  # every JSON answer in the suite is checked against its declared model
    }
    config.update(extra)
    app = create_app(config)
    with app.app_context():
        db.drop_all()
        db.create_all()
    return app


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


def stop_everything(app):
    """Finalizer: stop this instance's Celery processes, whatever the test left behind."""
    sup = app.extensions["supervisor"]
    sup.grace_s = 5.0
    sup.lock_wait_s = 120
    sup.stop(KINDS)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


TEST_PASSWORD = "correct horse battery"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).parent / "artifacts"  # screenshots of every page test (git-ignored)


def open_page(browser, width=1280, height=900):
    """A fresh browser context and page that accepts every dialog and remembers it (type, message)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.dialogs = []

    def on_dialog(dialog):
        page.dialogs.append((dialog.type, dialog.message))
        dialog.accept()
    page.on("dialog", on_dialog)
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    return context, page


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


def api_client(app, role="admin"):
    """A test client that authenticates like curl: a real user of that role and a real Bearer token."""
    tokens = app.extensions.setdefault("test_tokens", {})
    if role not in tokens:
        from panel.security import users
        with app.app_context():
            users.create(f"test-{role}", TEST_PASSWORD, role)
            tokens[role] = users.create_token(f"test-{role}", "tests")[1]
            db.session.remove()
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {tokens[role]}"
    return client


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
