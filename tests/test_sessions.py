"""Server-side sessions: the cookie names a row; logout, disable, role and password changes
delete rows, so a replayed cookie neither reads nor, with its CSRF token, writes."""
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app import create_app
from models import PanelSession, db, utcnow
from tests.helpers import form_login, make_user


def _cookie(client):
    return client.get_cookie("session").value


def _replay(app, cookie):
    """A fresh client (another browser, another machine) that sends a copied session cookie."""
    client = app.test_client()
    client.set_cookie("session", cookie)
    return client


def _refused(client, csrf_token):
    """The cookie neither reads (API 401, page redirect to /login) nor writes with its CSRF token."""
    assert client.get("/api/me").status_code == 401
    page = client.get("/runs")
    assert page.status_code == 302 and page.headers["Location"].startswith("/login")
    write = client.post("/restart_celery_beat", headers={"X-CSRFToken": csrf_token})
    assert write.status_code == 401
    form_write = client.post("/logout", data={"csrf_token": csrf_token})
    assert form_write.status_code == 302 and form_write.headers["Location"].startswith("/login?")


def test_the_cookie_carries_only_a_random_session_id(app):
    make_user(app, "ops", "operator")
    client = app.test_client()
    form_login(client, "ops")
    content = app.session_interface.get_signing_serializer(app).loads(_cookie(client))
    assert set(content) <= {"sid", "csrf_token", "_permanent"}, content
    assert len(content["sid"]) >= 40
    with app.app_context():
        row = db.session.scalars(select(PanelSession)).one()
        assert row.id_hash != content["sid"] and len(row.id_hash) == 64, "only a hash of the id is stored"
        lifetime = timedelta(seconds=app.config["SESSION_LIFETIME_S"])
        assert row.address == "127.0.0.1" and utcnow() < row.expires_at <= utcnow() + lifetime


def test_a_cookie_replayed_after_logout_is_refused_for_reads_and_writes(app):
    make_user(app, "ops", "operator")
    client = app.test_client()
    _, token = form_login(client, "ops")
    stolen = _cookie(client)
    copy = _replay(app, stolen)
    assert copy.get("/api/me").status_code == 200, "the copy works while the session lives"
    assert copy.post("/restart_celery_beat", headers={"X-CSRFToken": token}).status_code == 200
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    _refused(_replay(app, stolen), token)
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(PanelSession)) == 0


def test_logout_in_one_process_ends_the_session_in_another_at_once(app):
    """Two apps on one database stand for two gunicorn workers: the session is read from the table each request."""
    make_user(app, "ops", "operator")
    other_worker = create_app({k: app.config[k] for k in ("INSTANCE_PATH", "SQLALCHEMY_DATABASE_URI",
                                                          "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND",
                                                          "SECRET_KEY", "TESTING")})
    client = app.test_client()
    _, token = form_login(client, "ops")
    stolen = _cookie(client)
    assert _replay(other_worker, stolen).get("/api/me").status_code == 200
    client.post("/logout", data={"csrf_token": token})
    _refused(_replay(other_worker, stolen), token)


def _change(app, change):
    runner = app.test_cli_runner()
    steps = {"disable": [["users", "disable", "ops"], ["users", "enable", "ops"]],  # enabling again revives nothing
             "role": [["users", "set-role", "ops", "admin"]],
             "role-and-back": [["users", "set-role", "ops", "viewer"], ["users", "set-role", "ops", "operator"]],
             "password": [["users", "set-password", "ops", "--password-stdin"]]}[change]
    for args in steps:
        result = runner.invoke(args=args, input="a brand new password\n")
        assert result.exit_code == 0, result.output


@pytest.mark.parametrize("change", ["disable", "role", "role-and-back", "password"])
def test_disable_role_or_password_change_ends_every_session_of_that_user_at_once(app, change):
    make_user(app, "ops", "operator")
    make_user(app, "bystander", "operator")
    laptop, phone, other = app.test_client(), app.test_client(), app.test_client()
    _, token = form_login(laptop, "ops")
    form_login(phone, "ops")
    form_login(other, "bystander")
    stolen = _cookie(laptop)
    _change(app, change)
    for client in (laptop, phone, _replay(app, stolen)):
        _refused(client, token)
    assert other.get("/api/me").get_json()["username"] == "bystander", "other users' sessions live on"
    password = "a brand new password" if change == "password" else None
    fresh = app.test_client()
    assert form_login(fresh, "ops", *([password] if password else []))[0].status_code == 302
    assert fresh.get("/api/me").status_code == 200


def test_an_expired_session_is_refused_and_cleared(app):
    make_user(app, "ops", "operator")
    client = app.test_client()
    form_login(client, "ops")
    with app.app_context():
        db.session.execute(update(PanelSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert client.get("/api/me").status_code == 401


def test_a_cookie_of_the_old_kind_without_a_session_id_is_refused(app):
    """Cookies signed before this change carried uid and a password fingerprint: they name no session row."""
    make_user(app, "ops", "operator")
    with app.app_context():
        uid = db.session.scalar(select(db.metadata.tables["users"].c.id))
    old = app.session_interface.get_signing_serializer(app).dumps({"uid": uid, "pwv": "0" * 16, "_permanent": True})
    assert _replay(app, old).get("/api/me").status_code == 401


def test_the_cli_logs_a_user_out_everywhere(app):
    make_user(app, "ops", "operator")
    laptop, phone = app.test_client(), app.test_client()
    _, token = form_login(laptop, "ops")
    form_login(phone, "ops")
    result = app.test_cli_runner().invoke(args=["users", "end-sessions", "ops"])
    assert result.exit_code == 0 and "2 session(s) of ops ended" in result.output
    for client in (laptop, phone):
        _refused(client, token)
    assert form_login(app.test_client(), "ops")[0].status_code == 302, "the account itself is untouched"
