"""Security: a role matrix generated from the URL map, CSRF, tokens, rate limits, headers, audit, fuzzing."""
import re
import subprocess

import pytest

from models import AuditEvent, User, db
from panel.security import users
from panel.security.auth import PUBLIC, RANK, policy_of
from panel.web.errors import is_api_path
from tests.helpers import TEST_PASSWORD, api_client, form_login, free_port, make_user, wait_for

ROLES = (None, "viewer", "operator", "admin")
SKIP_METHODS = {"HEAD", "OPTIONS"}


@pytest.fixture
def dead_broker_app(make_app):
    """Controls answer fast (503) instead of starting real processes: the matrix checks access only."""
    return make_app(CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")


def _concrete(rule):
    """A URL for a rule, with made-up values for its arguments."""
    url = rule.rule
    for arg, conv in rule._converters.items():
        kind = type(conv).__name__
        if kind == "AnyConverter":  # a value it accepts, so the request reaches the access layer
            value = sorted(conv.items)[0]
        else:
            value = "999999" if kind in ("IntegerConverter", "NumberConverter") else "no-such-id"
        url = re.sub(r"<(?:[^:<>]+:)?%s>" % arg, value, url)
    return url


def _routes(app):
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - SKIP_METHODS):
            yield rule, method


def test_every_route_declares_an_access_policy(dead_broker_app):
    with dead_broker_app.test_request_context():
        missing = [r.endpoint for r in dead_broker_app.url_map.iter_rules() if policy_of(r.endpoint) is None]
    assert missing == []


def test_role_matrix_over_every_route_and_role(dead_broker_app):
    app = dead_broker_app
    clients = {role: (api_client(app, role) if role else app.test_client()) for role in ROLES}
    seen = 0
    for rule, method in _routes(app):
        url = _concrete(rule)
        with app.test_request_context():
            access = policy_of(rule.endpoint)
        for role in ROLES:
            resp = clients[role].open(url, method=method)
            where = f"{method} {url} as {role or 'anonymous'} -> {resp.status_code}"
            seen += 1
            if access == PUBLIC:  # the access layer lets it through (a failed login form is its own 401)
                assert resp.status_code != 403 and b"authentication required" not in resp.data, where
            elif role is None:
                if is_api_path(rule.rule):
                    assert resp.status_code == 401 and resp.is_json, where
                else:
                    assert resp.status_code == 302 and resp.headers["Location"].startswith("/login"), where
            elif RANK[role] < RANK[access]:
                assert resp.status_code == 403, where
            else:
                assert resp.status_code not in (401, 403) and resp.status_code < 500 or resp.status_code == 503, where
    assert seen >= 4 * 12


def test_login_sets_a_hardened_session_cookie_and_logout_needs_csrf(app):
    make_user(app, "ops", "operator")
    client = app.test_client()
    resp, token = form_login(client, "ops")
    assert resp.status_code == 302 and resp.headers["Location"] == "/"
    cookie = next(c for c in resp.headers.getlist("Set-Cookie") if c.startswith("session="))  # not the device's
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/api/me").get_json() == {"username": "ops", "role": "operator", "via": "session"}

    refused = client.post("/logout")
    assert refused.status_code == 400
    assert client.get("/api/me").status_code == 200, "a forged logout changed something"
    wrong = client.post("/scheduler/stop-celery/", headers={"X-CSRFToken": "forged"})
    assert wrong.status_code == 400 and wrong.get_json()["status"] == "error"
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/api/me").status_code == 401


def test_a_session_post_with_the_csrf_header_is_accepted(app):
    make_user(app, "ops", "operator")
    client = app.test_client()
    _, token = form_login(client, "ops")
    resp = client.post("/restart_celery_beat", headers={"X-CSRFToken": token})
    assert resp.status_code == 200 and resp.get_json()["not_running"] is True


def test_a_token_works_from_curl_and_stops_working_when_revoked(app, serve):
    make_user(app, "bot", "operator")
    with app.app_context():
        token, plain = users.create_token("bot", "curl")
        token_id = token.id
        stored = db.session.get(type(token), token_id).token_hash
        db.session.remove()
    assert plain not in stored and len(stored) == 64
    base = serve(app)
    curl = lambda *args: subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", *args],  # noqa
                                        capture_output=True, text=True, timeout=30).stdout
    assert curl("-H", f"Authorization: Bearer {plain}", f"{base}/celery_status") == "200"
    assert curl("-X", "POST", "-H", f"Authorization: Bearer {plain}", f"{base}/restart_celery_beat") == "200"
    assert curl(f"{base}/celery_status") == "401"
    with app.app_context():
        users.revoke_token(token_id)
        db.session.remove()
    assert curl("-H", f"Authorization: Bearer {plain}", f"{base}/celery_status") == "401"


def test_login_is_rate_limited_per_account_and_address(app):
    make_user(app, "victim", "viewer")
    limit = app.config["LOGIN_MAX_FAILURES_PER_ACCOUNT_ADDRESS"]
    client = app.test_client()
    for _ in range(limit):
        assert form_login(client, "victim", "wrong password!")[0].status_code == 401
    blocked, _ = form_login(client, "victim")  # even the right password
    assert blocked.status_code == 429 and "Retry-After" in blocked.headers
    other = app.test_client()
    make_user(app, "bystander", "viewer")
    assert form_login(other, "bystander")[0].status_code == 302, "one account's lock must not lock the others"


def test_login_is_rate_limited_per_address(make_app):
    app = make_app(LOGIN_MAX_FAILURES_PER_ADDRESS=3)
    make_user(app, "real", "viewer")
    client = app.test_client()
    for name in ("a", "b", "c"):
        assert form_login(client, name, "nope-nope-nope")[0].status_code == 401
    assert form_login(client, "real")[0].status_code == 429
    with app.app_context():
        locks = db.session.query(AuditEvent).filter_by(action="login.lockout").all()
    assert [(e.target, e.outcome) for e in locks] == [("127.0.0.1", "denied")], "the address lock is audited"


def test_security_headers_on_pages_and_api(app):
    for resp in (app.test_client().get("/login"), api_client(app).get("/celery_status")):
        csp = resp.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    page = api_client(app).get("/").get_data(as_text=True)
    assert "<script>" not in page and "onclick" not in page, "inline script would break the CSP"


def test_users_cli_creates_changes_and_disables_users(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "create", "carol", "--role", "operator", "--password-stdin"],
                           input="a long enough password\n")
    assert result.exit_code == 0, result.output
    with app.app_context():
        carol = db.session.query(User).filter_by(username="carol").one()
        assert carol.password_hash.startswith("scrypt:") and "a long enough" not in carol.password_hash
    assert "carol" in runner.invoke(args=["users", "list"]).output
    assert runner.invoke(args=["users", "set-role", "carol", "admin"]).exit_code == 0
    client = app.test_client()
    assert form_login(client, "carol", "a long enough password")[0].status_code == 302
    assert client.get("/api/me").get_json()["role"] == "admin"
    assert runner.invoke(args=["users", "disable", "carol"]).exit_code == 0
    assert client.get("/api/me").status_code == 401, "a disabled user's session must end"
    assert form_login(app.test_client(), "carol", "a long enough password")[0].status_code == 401
    bad = runner.invoke(args=["users", "create", "dan", "--password-stdin"], input="short\n")
    assert bad.exit_code != 0 and "at least" in bad.output


def test_a_password_change_ends_open_sessions(app):
    make_user(app, "erin", "viewer")
    client = app.test_client()
    form_login(client, "erin")
    assert client.get("/api/me").status_code == 200
    result = app.test_cli_runner().invoke(args=["users", "set-password", "erin", "--password-stdin"],
                                          input="a brand new password\n")
    assert result.exit_code == 0
    assert client.get("/api/me").status_code == 401


def test_tokens_cli_prints_once_lists_without_secret_and_revokes(app):
    make_user(app, "robot", "viewer")
    runner = app.test_cli_runner()
    created = runner.invoke(args=["tokens", "create", "robot", "--name", "ci"])
    plain = created.stdout.strip().splitlines()[0]
    assert plain.startswith("ccp_")
    listing = runner.invoke(args=["tokens", "list"]).output
    assert "robot" in listing and plain not in listing
    client = app.test_client()
    assert client.get("/api/me", headers={"Authorization": f"Bearer {plain}"}).get_json()["username"] == "robot"
    assert "last used never" in listing
    # The use is noted off the request (a thread), so the listing shows it a moment later.
    wait_for(lambda: "last used 20" in runner.invoke(args=["tokens", "list"]).output, 10, "a used token to show when")
    token_id = listing.split()[0]
    assert runner.invoke(args=["tokens", "revoke", token_id]).exit_code == 0
    assert client.get("/api/me", headers={"Authorization": f"Bearer {plain}"}).status_code == 401


def test_bootstrap_admin_happens_once(app):
    with app.app_context():
        password = users.bootstrap_admin()
        assert password and len(password) >= 16
        assert users.bootstrap_admin() is None
        assert users.authenticate("admin", password).role == "admin"


def test_auth_off_is_loopback_only_and_shows_a_warning(make_app):
    app = make_app(PANEL_AUTH="off")
    client = app.test_client()
    page = client.get("/")
    assert page.status_code == 200 and "Login is switched off" in page.get_data(as_text=True)
    assert app.test_client().post("/restart_celery_beat").status_code == 200, "curl on loopback needs nothing"
    cross_site = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
    browser = client.post("/restart_celery_beat", headers=cross_site)
    assert browser.status_code == 400, "a cross-site browser request must still need the CSRF token"
    remote = client.get("/api/me", environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert remote.status_code == 401
    with pytest.raises(RuntimeError, match="only allowed on loopback"):
        make_app(PANEL_AUTH="off", PANEL_HOST="0.0.0.0")


def test_the_audit_log_records_logins_and_control_actions_and_is_read_only(app):
    make_user(app, "olga", "operator")
    form_login(app.test_client(), "olga", "not her password")
    client = app.test_client()
    _, token = form_login(client, "olga")
    client.post("/restart_celery_beat", headers={"X-CSRFToken": token})
    api_client(app, "viewer").post("/scheduler/stop-celery/")
    events = api_client(app).get("/api/audit?limit=50").get_json()["events"]
    summary = {(e["actor"], e["action"], e["outcome"]) for e in events}
    assert ("olga", "login", "failure") in summary and ("olga", "login", "success") in summary
    # Beat was not running: /restart_celery_beat answers 200 with success false, and the restart did not happen
    assert ("olga", "api.restart_celery_beat", "failure") in summary
    assert ("test-viewer", "api.stop_celery", "denied") in summary
    assert all(e["source"] == "127.0.0.1" for e in events if e["actor"] == "olga")
    assert api_client(app, "operator").get("/api/audit").status_code == 403
    for rule in app.url_map.iter_rules():
        if "audit" in rule.rule:
            assert rule.methods - SKIP_METHODS == {"GET"}, f"{rule} could change the audit log"
    with app.app_context():
        assert db.session.query(AuditEvent).count() == 4  # two logins, one action, one refusal


def test_the_openapi_document_covers_every_json_route(app):
    spec = api_client(app, "viewer").get("/api/openapi.json").get_json()
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    for rule, method in _routes(app):
        if is_api_path(rule.rule):
            path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
            assert (path, method) in documented, f"{method} {path} is missing from the OpenAPI document"


def test_every_state_changing_route_refuses_a_browser_session_without_the_csrf_token(dead_broker_app):
    """Parametrised over the URL map, as the role matrix is: a new POST, PUT or DELETE cannot escape it."""
    app = dead_broker_app
    make_user(app, "root", "admin")
    client = app.test_client()
    form_login(client, "root")
    unsafe = [(rule, method) for rule, method in _routes(app) if method in ("POST", "PUT", "DELETE", "PATCH")]
    assert len(unsafe) >= 30
    for rule, method in unsafe:
        resp = client.open(_concrete(rule), method=method, json={})
        where = f"{method} {rule.rule} -> {resp.status_code}"
        assert resp.status_code == 400 and b"CSRF" in resp.data, where
    with app.app_context():
        refused = db.session.query(AuditEvent).filter_by(actor="root", outcome="denied").count()
    assert refused >= len(unsafe) - 2  # every refusal audited (logout and login are not audited as requests)


def test_auth_off_serves_only_the_configured_host_names(make_app):
    """DNS rebinding: a page on evil.example that resolves to 127.0.0.1 gets 400, not admin."""
    app = make_app(PANEL_AUTH="off", PANEL_ALLOWED_HOSTS="panel.internal, Tunnel.Example:8443")
    port = app.config["PANEL_PORT"]
    client = app.test_client()
    good = ["localhost", f"localhost:{port}", "127.0.0.1", f"127.0.0.1:{port}", "[::1]", f"[::1]:{port}",
            "LOCALHOST", "panel.internal", f"panel.internal:{port}", "tunnel.example:8443"]
    for host in good:
        assert client.get("/api/me", headers={"Host": host}).status_code == 200, host
    assert client.get("/", headers={"Host": f"localhost:{port}"}).status_code == 200
    bad = ["evil.example", f"evil.example:{port}", "localhost.evil.example", "127.0.0.1.nip.io", "evil.example:5000"]
    for host in bad:
        api = client.get("/api/me", headers={"Host": host})
        assert api.status_code == 400 and api.is_json, host
        assert "PANEL_ALLOWED_HOSTS" in api.get_json()["message"] and host.split(":")[0] in api.get_json()["message"]
        page = client.get("/", headers={"Host": host})
        assert page.status_code == 400 and "PANEL_ALLOWED_HOSTS" in page.get_data(as_text=True), host
        assert "csrf-token" not in page.get_data(as_text=True)
        for path in ("/static/panel.js", "/no-such-page"):
            assert client.get(path, headers={"Host": host}).status_code == 400, (host, path)
        assert client.post("/restart_celery_beat", headers={"Host": host}).status_code == 400


def test_with_auth_on_the_host_name_is_not_checked(app):
    make_user(app, "ops", "operator")
    client = app.test_client()
    assert client.get("/login", headers={"Host": "panel.example.com"}).status_code == 200
    assert api_client(app).get("/api/me", headers={"Host": "panel.example.com:8443"}).status_code == 200


@pytest.mark.parametrize("target", ["/\r\nSet-Cookie: x=1", "/runs\r\n", "/\n", "/a\x00b", "/\x7f", "/\u2028", "/\x85",
                                    "/\\evil.example", "/\t/evil.example", "//evil.example", "https://evil.example/",
                                    "javascript:alert(1)", "", "runs"])
def test_a_bad_next_after_a_successful_login_goes_to_the_dashboard(app, target):
    """A login `next` with CR LF answered 500 after the login succeeded."""
    make_user(app, "ops", "operator")
    client = app.test_client()
    form = client.get("/login", query_string={"next": target})
    assert form.status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.get_data(as_text=True)).group(1)
    resp = client.post("/login", data={"username": "ops", "password": TEST_PASSWORD, "csrf_token": token,
                                       "next": target})
    assert resp.status_code == 302 and resp.headers["Location"] == "/", repr(target)
    assert client.get("/api/me").status_code == 200


def test_a_good_next_is_kept(app):
    make_user(app, "ops", "operator")
    client = app.test_client()
    first = client.get("/runs?state=FAILURE")
    assert first.status_code == 302
    form = client.get(first.headers["Location"]).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    target = re.search(r'name="next" value="([^"]+)"', form).group(1)
    resp = client.post("/login", data={"username": "ops", "password": TEST_PASSWORD, "csrf_token": token,
                                       "next": target.replace("&amp;", "&")})
    assert resp.headers["Location"] == "/runs?state=FAILURE"
