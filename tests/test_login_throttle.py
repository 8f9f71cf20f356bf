"""Login throttling an attacker cannot turn against the real user: rotating addresses cannot hold the slowdown,
a trusted proxy's X-Forwarded-For names the client (and only when told so), a known device gets in through an
address others locked."""
import pytest
from sqlalchemy import select

from models import AuditEvent, db
from panel.security import devices
from tests.helpers import form_login, make_user
from tests.moved_clock import MovedClock

WRONG = "not the password at all"
PROXY = "10.0.0.2"


@pytest.fixture
def moved_clock(monkeypatch):
    return MovedClock(monkeypatch)


def _from(app, address, forwarded_for=None):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    if forwarded_for:
        client.environ_base["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return client


def _login_sources(app, outcome):
    with app.app_context():
        return [e.source for e in db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "login", AuditEvent.outcome == outcome))]


def test_rotating_attackers_cannot_hold_the_slowdown_against_the_owner_at_a_new_address(app, moved_clock):
    """One failure a minute, each from a new address, for 40 minutes: the account is slowed all along (an address
    that failed and tries again at once is refused), yet the owner from an address never seen gets in at once."""
    make_user(app, "admin1", "admin")
    for minute in range(40):
        bot = _from(app, f"203.0.113.{minute + 1}")
        assert form_login(bot, "admin1", WRONG)[0].status_code == 401, f"minute {minute}: the bot's guess is tried"
        if minute >= app.config["LOGIN_SLOW_AFTER_FAILURES_PER_ACCOUNT"]:
            again, _ = form_login(bot, "admin1", WRONG)
            assert again.status_code == 429 and int(again.headers["Retry-After"]) >= 1, f"minute {minute}"
        moved_clock.advance(60)
    form_login(_from(app, "203.0.113.99"), "admin1", WRONG)  # one more, 20 s before the owner comes
    moved_clock.advance(20)
    owner = _from(app, "192.0.2.10")
    resp, _ = form_login(owner, "admin1")
    assert resp.status_code == 302, resp.get_data(as_text=True)
    assert owner.get("/api/me").get_json()["username"] == "admin1"
    assert len(_login_sources(app, "failure")) == 41, "refused attempts are not counted as failures"


def test_behind_a_trusted_proxy_the_client_address_is_throttled_not_the_proxy(make_app):
    """20 anonymous failures through the proxy lock the attacker's own address; a real user behind the same proxy,
    from another address, logs in on the first try."""
    app = make_app(TRUSTED_PROXY_HOPS=1)
    make_user(app, "ops", "operator")
    attacker = _from(app, PROXY, forwarded_for="203.0.113.66")
    for n in range(app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"]):
        assert form_login(attacker, f"nobody-{n}", WRONG)[0].status_code == 401
    locked, _ = form_login(attacker, "ops")
    assert locked.status_code == 429 and "from your address" in locked.get_data(as_text=True)
    owner = _from(app, PROXY, forwarded_for="192.0.2.10")
    assert form_login(owner, "ops")[0].status_code == 302, "the proxy's address is not the client's"
    assert set(_login_sources(app, "failure")) == {"203.0.113.66"}
    assert _login_sources(app, "success") == ["192.0.2.10"]


def test_with_the_default_setting_x_forwarded_for_is_ignored_so_it_cannot_dodge_the_throttle(app):
    """TRUSTED_PROXY_HOPS=0: a forged header names nobody; the attacker's own address is counted and locked."""
    assert app.config["TRUSTED_PROXY_HOPS"] == 0
    make_user(app, "ops", "operator")
    for n in range(app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"]):
        forged = _from(app, "198.51.100.66", forwarded_for=f"192.0.2.{n + 1}")
        assert form_login(forged, f"nobody-{n}", WRONG)[0].status_code == 401
    locked, _ = form_login(_from(app, "198.51.100.66", forwarded_for="192.0.2.200"), "ops")
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 60
    assert set(_login_sources(app, "failure")) == {"198.51.100.66"}


def test_a_known_device_gets_in_through_a_shared_address_that_others_locked(app):
    """Behind a NAT without the proxy setting every browser shares one address: failures from it lock out strangers,
    never a browser that logged in as that user before (its signed cookie), and a forged cookie is a stranger's."""
    make_user(app, "ops", "operator")
    nat = "198.51.100.7"
    owner = _from(app, nat)
    _, token = form_login(owner, "ops")
    assert owner.get_cookie(devices.COOKIE) is not None, "a successful login marks the browser as known"
    owner.post("/logout", data={"csrf_token": token})
    attacker = _from(app, nat)
    for n in range(app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"]):
        form_login(attacker, "ops" if n < 5 else f"nobody-{n}", WRONG)
    assert form_login(attacker, "ops")[0].status_code == 429
    forger = _from(app, nat)
    forger.set_cookie(devices.COOKIE, owner.get_cookie(devices.COOKIE).value[:-2] + "xx")
    assert form_login(forger, "ops")[0].status_code == 429, "a cookie that is not ours counts for nothing"
    assert form_login(owner, "ops")[0].status_code == 302, "the owner's browser is no stranger"


def test_a_known_device_that_fails_five_times_is_a_stranger_again(app):
    make_user(app, "ops", "operator")
    laptop = _from(app, "192.0.2.10")
    form_login(laptop, "ops")
    for _ in range(app.config["LOGIN_MAX_FAILURES_PER_ACCOUNT_ADDRESS"]):
        assert form_login(laptop, "ops", WRONG)[0].status_code == 401
    assert form_login(laptop, "ops")[0].status_code == 429, "its own failures count against it"
    with app.app_context():
        lockouts = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "login.lockout")).all()
    assert any("known device" in e.target for e in lockouts), [e.target for e in lockouts]
