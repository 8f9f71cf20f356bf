"""Login lockout that cannot be used as a weapon: failures lock an account only for the address
they came from; failures from everywhere slow down the addresses that failed (429 with a short Retry-After), never
a new address, and never lock the account. (tests/test_login_throttle.py: rotating attackers, proxies, devices.)"""
from datetime import timedelta

from sqlalchemy import select

from models import AuditEvent, db
from tests.helpers import form_login, make_user

WRONG = "not the password at all"


def _from(app, address):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def _events(app, action):
    with app.app_context():
        return db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()


def _age_failures(app, seconds):
    """Time passes: every audit event moves `seconds` into the past."""
    with app.app_context():
        for event in db.session.scalars(select(AuditEvent)):
            event.at -= timedelta(seconds=seconds)
        db.session.commit()


def test_failures_from_one_address_do_not_stop_the_right_password_from_another(app):
    make_user(app, "admin1", "admin")
    attacker = _from(app, "198.51.100.66")
    for _ in range(5):  # LOGIN_MAX_FAILURES_PER_ACCOUNT_ADDRESS
        assert form_login(attacker, "admin1", WRONG)[0].status_code == 401
    locked, _ = form_login(attacker, "admin1")  # even the right password, from the attacker's address
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 60
    owner = _from(app, "192.0.2.10")
    resp, _ = form_login(owner, "admin1")
    assert resp.status_code == 302 and resp.headers["Location"] == "/", "the owner elsewhere still gets in"
    assert owner.get("/api/me").get_json()["username"] == "admin1"
    assert form_login(attacker, "admin1")[0].status_code == 429, "the attacker's address stays locked"
    lockouts = _events(app, "login.lockout")
    assert [(e.actor, e.source, e.outcome) for e in lockouts] == [("admin1", "198.51.100.66", "denied")]
    assert "198.51.100.66" in lockouts[0].detail and "admin1" in lockouts[0].detail


def test_a_locked_address_is_free_again_after_the_window(app):
    make_user(app, "ops", "operator")
    attacker = _from(app, "198.51.100.66")
    for _ in range(5):
        form_login(attacker, "ops", WRONG)
    assert form_login(attacker, "ops")[0].status_code == 429
    _age_failures(app, app.config["LOGIN_WINDOW_S"] + 1)
    assert form_login(attacker, "ops")[0].status_code == 302


def test_failures_from_many_addresses_slow_each_failing_address_never_a_new_one(make_app):
    """Updated to the rule of issue 29: the slowdown holds up the addresses that failed, each from its own last
    failure; it once held up every address, so rotating attackers could keep the owner out."""
    app = make_app(LOGIN_SLOW_AFTER_FAILURES_PER_ACCOUNT=8)
    make_user(app, "admin1", "admin")
    bots = [_from(app, f"203.0.113.{n}") for n in range(1, 9)]
    for bot in bots:  # each bot stays under the per-address lock: one failure each
        assert form_login(bot, "admin1", WRONG)[0].status_code == 401
    slowed, _ = form_login(bots[-1], "admin1", WRONG)
    retry = int(slowed.headers["Retry-After"])
    assert slowed.status_code == 429 and 1 <= retry <= app.config["LOGIN_SLOW_MAX_DELAY_S"]
    assert "seconds" in slowed.get_data(as_text=True)
    owner = _from(app, "192.0.2.10")
    assert form_login(owner, "admin1")[0].status_code == 302, "an address that never failed is not slowed"
    _age_failures(app, retry)
    assert form_login(bots[-1], "admin1", WRONG)[0].status_code == 401, "after the delay the bot may try again"
    slowdowns = _events(app, "login.slowdown")
    assert len(slowdowns) == 1 and slowdowns[0].actor == "admin1" and slowdowns[0].outcome == "denied"


def test_the_slowdown_grows_with_each_further_failure_up_to_its_ceiling(make_app):
    app = make_app(LOGIN_SLOW_AFTER_FAILURES_PER_ACCOUNT=3, LOGIN_SLOW_MAX_DELAY_S=8)
    make_user(app, "ops", "operator")
    delays = []
    for n in range(1, 9):
        bot = _from(app, f"203.0.113.{n}")
        assert form_login(bot, "ops", WRONG)[0].status_code == 401, "a new address is never slowed"
        resp, _ = form_login(bot, "ops", WRONG)  # the same address at once: slowed once the account is
        if resp.status_code == 429:
            delays.append(int(resp.headers["Retry-After"]))
            _age_failures(app, delays[-1])  # wait as told, then fail once more
            assert form_login(bot, "ops", WRONG)[0].status_code == 401
    assert delays == sorted(delays) and delays[0] < delays[-1] == 8, delays


def test_refused_attempts_do_not_count_as_failures(app):
    """While locked, more tries from the attacker's address do not lengthen the lock or slow the account."""
    make_user(app, "ops", "operator")
    attacker = _from(app, "198.51.100.66")
    for _ in range(30):
        form_login(attacker, "ops", WRONG)
    with app.app_context():
        counted = db.session.scalar(select(db.func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "login", AuditEvent.outcome == "failure"))
    assert counted == 5
    assert form_login(_from(app, "192.0.2.10"), "ops")[0].status_code == 302


def test_an_address_the_account_logged_in_from_lately_is_not_slowed(make_app):
    """The owner at their usual address gets in at once, a typo of theirs too, while failing bots are slowed."""
    app = make_app(LOGIN_SLOW_AFTER_FAILURES_PER_ACCOUNT=3)
    make_user(app, "ops", "operator")
    office = _from(app, "192.0.2.10")
    assert form_login(office, "ops")[0].status_code == 302
    for n in range(1, 4):
        form_login(_from(app, f"203.0.113.{n}"), "ops", WRONG)
    assert form_login(_from(app, "192.0.2.10"), "ops", WRONG)[0].status_code == 401  # the owner's typo
    assert form_login(_from(app, "203.0.113.3"), "ops")[0].status_code == 429, "a bot that failed is slowed"
    assert form_login(_from(app, "192.0.2.10"), "ops")[0].status_code == 302, "the office is not"
