"""Sessions end after SESSION_IDLE_TIMEOUT_S without a request and SESSION_LIFETIME_S after the login, whatever the
use; a request refreshes the idle clock. Time is moved, never slept."""
import re
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import pytest
from sqlalchemy import select

from models import PanelSession, db
from panel.security import sessions
from tests.helpers import form_login, make_user, wait_for
from tests.moved_clock import MovedClock


@pytest.fixture
def moved_clock(monkeypatch):
    return MovedClock(monkeypatch)


def _last_seen(app):
    with app.app_context():
        seen = db.session.scalars(select(PanelSession.last_seen_at)).one()
        db.session.remove()
        return seen


def _used(app, client, clock):
    """A request now, and its note in the session's row (written off the request)."""
    assert client.get("/api/me").status_code == 200
    wait_for(lambda: _last_seen(app) == clock.at, 10, "the session's use to be noted")


def _ended(client):
    assert client.get("/api/me").status_code == 401
    page = client.get("/runs")
    assert page.status_code == 302 and page.headers["Location"].startswith("/login")


def test_a_session_idle_past_the_timeout_ends_and_each_request_refreshes_it(app, moved_clock):
    idle_s = app.config["SESSION_IDLE_TIMEOUT_S"]
    assert idle_s == 1800, "the documented default"
    make_user(app, "ops", "operator")
    client = app.test_client()
    form_login(client, "ops")
    for _ in range(3):  # an hour and a half of use, one request every 29 minutes
        moved_clock.advance(idle_s - 60)
        _used(app, client, moved_clock)
    allowance_s = sessions.resolution(idle_s).total_seconds()
    moved_clock.advance(idle_s + allowance_s + 1)
    _ended(client)


def test_the_lifetime_ends_a_session_in_use(make_app, moved_clock):
    app = make_app(SESSION_LIFETIME_S=3600)
    make_user(app, "ops", "operator")
    client = app.test_client()
    resp, _ = form_login(client, "ops")
    cookie = next(c for c in resp.headers.getlist("Set-Cookie") if c.startswith("session="))
    expires = parsedate_to_datetime(re.search(r"Expires=([^;]+)", cookie).group(1))
    assert 3500 < (expires - datetime.now(timezone.utc)).total_seconds() <= 3600, "the cookie outlives the session"
    for _ in range(3):
        moved_clock.advance(20 * 60 - 1)
        _used(app, client, moved_clock)
    moved_clock.advance(4)
    _ended(client)


def test_an_idle_timeout_of_zero_lets_a_session_idle_until_its_lifetime(make_app, moved_clock):
    app = make_app(SESSION_IDLE_TIMEOUT_S=0)
    make_user(app, "ops", "operator")
    client = app.test_client()
    form_login(client, "ops")
    moved_clock.advance(app.config["SESSION_LIFETIME_S"] - 60)
    assert client.get("/api/me").status_code == 200
    moved_clock.advance(61)
    _ended(client)
