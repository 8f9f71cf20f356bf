"""A password change ends every session of the user and offers to end their API tokens too: as JSON, on the page
and on the command line, each saying how many ended and how many still work."""
import re

from panel.security import users
from tests.helpers import TEST_PASSWORD, api_client, form_login, make_user

NEW = "a brand new password"


def _token(app, name):
    with app.app_context():
        return users.create_token(name, "script")[1]


def _works(app, token):
    return app.test_client().get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def _change(client, token=None, **body):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post("/api/me/password", json=body, headers=headers)


def test_a_change_without_end_tokens_keeps_them_working_and_says_so(app):
    make_user(app, "ops", "operator")
    token = _token(app, "ops")
    elsewhere = app.test_client()
    form_login(elsewhere, "ops")
    resp = _change(app.test_client(), token, current_password=TEST_PASSWORD, new_password=NEW)
    body = resp.get_json()
    assert resp.status_code == 200, body
    assert (body["tokens_ended"], body["tokens_kept"], body["sessions_ended"]) == (0, 1, 1)
    assert "1 API token(s) still work" in body["message"]
    assert _works(app, token), "a token is not a password: it keeps working unless asked"
    assert elsewhere.get("/api/me").status_code == 401, "every open session ended"
    assert form_login(app.test_client(), "ops", NEW)[0].status_code == 302


def test_a_change_with_end_tokens_ends_every_token_of_the_user_and_says_how_many(app):
    make_user(app, "ops", "operator")
    mine = [_token(app, "ops") for _ in range(2)]
    theirs = api_client(app, "viewer").environ_base["HTTP_AUTHORIZATION"].split(" ", 1)[1]
    resp = _change(app.test_client(), mine[0], current_password=TEST_PASSWORD, new_password=NEW, end_tokens=True)
    body = resp.get_json()
    assert resp.status_code == 200 and (body["tokens_ended"], body["tokens_kept"]) == (2, 0), body
    assert "2 API token(s) ended too" in body["message"]
    assert not any(_works(app, token) for token in mine)
    assert _works(app, theirs), "another user's token is not touched"


def test_the_page_offers_to_end_the_tokens_and_keeps_this_browser_logged_in(app):
    make_user(app, "ops", "operator")
    token = _token(app, "ops")
    browser = app.test_client()
    _, csrf = form_login(browser, "ops")
    page = browser.get("/account").get_data(as_text=True)
    assert 'name="end_tokens"' in page and "1 working now" in page
    done = browser.post("/account", data={"csrf_token": csrf, "current_password": TEST_PASSWORD, "new_password": NEW,
                                          "new_password_again": NEW, "end_tokens": "1"})
    text = done.get_data(as_text=True)
    assert done.status_code == 200 and "1 API token(s) ended too" in text and "stays logged in" in text, text
    assert not _works(app, token)
    assert browser.get("/api/me").status_code == 200, "the browser that changed it carries on in a new session"


def test_the_page_says_what_is_wrong_with_the_form(app):
    make_user(app, "ops", "operator")
    browser = app.test_client()
    _, csrf = form_login(browser, "ops")
    form = {"csrf_token": csrf, "current_password": TEST_PASSWORD, "new_password": NEW, "new_password_again": "other"}
    mismatch = browser.post("/account", data=form)
    assert mismatch.status_code == 400 and "new_password_again" in mismatch.get_data(as_text=True)
    short = browser.post("/account", data={**form, "new_password": "short", "new_password_again": "short"})
    assert short.status_code == 400 and re.search(r"new_password.*10", short.get_data(as_text=True))
    wrong = browser.post("/account", data={**form, "current_password": "not it at all", "new_password_again": NEW})
    assert wrong.status_code == 403 and "is not your password" in wrong.get_data(as_text=True)


def test_wrong_current_passwords_are_refused_and_throttled_as_failed_logins(app):
    make_user(app, "ops", "operator")
    token = _token(app, "ops")
    client = app.test_client()
    for _ in range(app.config["LOGIN_MAX_FAILURES_PER_ACCOUNT_ADDRESS"]):
        wrong = _change(client, token, current_password="a guess at it", new_password=NEW)
        assert wrong.status_code == 403 and wrong.get_json()["message"] == "current_password: is not your password"
    throttled = _change(client, token, current_password=TEST_PASSWORD, new_password=NEW)
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 60
    assert throttled.get_json()["status"] == "error"
    assert form_login(app.test_client(), "ops", NEW)[0].status_code == 429, "nothing changed"


def test_bad_bodies_name_the_field(app):
    make_user(app, "ops", "operator")
    token = _token(app, "ops")
    short = _change(app.test_client(), token, current_password=TEST_PASSWORD, new_password="short")
    assert short.status_code == 400 and short.get_json()["field"] == "new_password"
    missing = _change(app.test_client(), token, new_password=NEW)
    assert missing.status_code == 400 and missing.get_json()["field"] == "current_password"
    odd = _change(app.test_client(), token, current_password=TEST_PASSWORD, new_password=NEW, end_tokens="yes")
    assert odd.status_code == 400 and odd.get_json()["field"] == "end_tokens"


def test_with_login_off_there_is_no_password_to_change(make_app):
    app = make_app(PANEL_AUTH="off")
    resp = app.test_client().post("/api/me/password", json={"current_password": "x", "new_password": NEW})
    assert resp.status_code == 409 and "PANEL_AUTH=off" in resp.get_json()["message"]


def test_the_command_line_ends_tokens_only_when_asked_and_says_which(app):
    make_user(app, "ops", "operator")
    token = _token(app, "ops")
    runner = app.test_cli_runner()
    kept = runner.invoke(args=["users", "set-password", "ops", "--password-stdin"], input=f"{NEW}\n")
    assert kept.exit_code == 0 and "1 API token(s) still work" in kept.output, kept.output
    assert _works(app, token)
    ended = runner.invoke(args=["users", "set-password", "ops", "--password-stdin", "--end-tokens"], input=f"{NEW}!\n")
    assert ended.exit_code == 0 and "1 API token(s) ended too" in ended.output, ended.output
    assert not _works(app, token)
