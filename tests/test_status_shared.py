"""The status snapshot shared by concurrent pollers, and the short cache of Bearer identities: shared work is never
staler than it says, a control action through the panel is seen at once, a revoked token is refused at once."""
import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import update

from models import ApiToken, db
from panel.host.changes import ChangeMarker
from panel.security import auth, users
from panel.web import shared
from tests.helpers import api_client, wait_for

WAIT_S = 30


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _parsed(stamp):
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_concurrent_requests_share_one_computation_while_it_runs():
    share, release, calls = shared.Share(60.0), threading.Event(), []

    def compute():
        calls.append(1)
        release.wait(WAIT_S)  # every other thread arrives while this one computes
        return {"running": True}

    got = []
    threads = [threading.Thread(target=lambda: got.append(share.get("beat", compute))) for _ in range(8)]
    for thread in threads:
        thread.start()
    wait_for(lambda: calls, WAIT_S, "one thread to compute")
    release.set()
    for thread in threads:
        thread.join(WAIT_S)
    assert len(calls) == 1 and share.computed == 1
    assert len(got) == 8 and len({id(snap) for snap in got}) == 1, "every request got the one snapshot"


def test_snapshot_is_recomputed_once_max_age_is_reached_never_later():
    clock = FakeClock()
    share = shared.Share(1.0, clock=clock)
    first = share.get("beat", dict)
    clock.now += 0.99
    assert share.get("beat", dict) is first
    clock.now += 0.01
    second = share.get("beat", dict)
    assert second is not first and share.computed == 2 and second.taken == clock.now


def test_no_sharing_when_status_share_is_zero():
    share = shared.Share(0.0)
    share.get("beat", dict)
    share.get("beat", dict)
    assert share.computed == 2


def test_a_drop_in_one_process_makes_every_share_on_the_instance_recompute(tmp_path):
    mine = shared.Share(60.0, ChangeMarker(tmp_path, "status"))
    theirs = shared.Share(60.0, ChangeMarker(tmp_path, "status"))  # as two gunicorn workers
    kept = theirs.get("beat", dict)
    assert theirs.get("beat", dict) is kept
    mine.drop()
    assert theirs.get("beat", dict) is not kept and theirs.computed == 2


def test_a_computation_overtaken_by_a_drop_is_not_kept(tmp_path):
    share = shared.Share(60.0, ChangeMarker(tmp_path, "status"))
    during = share.get("beat", lambda: share.drop() or {"running": False})  # an action ended while it was read
    assert share.get("beat", dict) is not during and share.computed == 2


def test_status_answers_say_their_age_and_never_exceed_it(make_app):
    app = make_app(STATUS_SHARE_S=0.2)
    client = api_client(app, "viewer")
    seen = set()
    for _ in range(10000):  # bounded: until three snapshots were seen, each answer checked on the way
        sent = datetime.utcnow()
        legacy = client.get("/celery_status")
        dashboard = client.get("/scheduler/celery-status/")
        assert legacy.get_json() == {"running": False, "pids": [], "count": 0, "hosts": []}, "the contract's body"
        assert legacy.headers["X-Status-Max-Age-S"] == "0.2"
        body = dashboard.get_json()
        assert body["max_age_s"] == 0.2 and dashboard.headers["X-Status-As-Of"] == body["as_of"]
        for stamp in (legacy.headers["X-Status-As-Of"], body["as_of"]):
            assert _parsed(stamp).replace(tzinfo=None) >= sent - timedelta(seconds=0.2), "older than it says"
            seen.add(stamp)
        if len(seen) >= 6:
            break
    assert len(seen) >= 6


def test_start_and_stop_through_the_panel_are_seen_at_once(make_app):
    app = make_app(STATUS_SHARE_S=3600.0)  # a snapshot that outlived an action would be seen
    viewer, operator = api_client(app, "viewer"), api_client(app, "operator")
    assert viewer.get("/celery_status").get_json()["running"] is False
    assert viewer.get("/scheduler/celery-status/").get_json()["status"] == "stopped"
    started = operator.post("/scheduler/start-celery/").get_json()
    assert started["status"] == "success", started
    legacy = viewer.get("/celery_status").get_json()
    assert legacy["running"] is True and legacy["pids"] == started["beat_pids"]
    dashboard = viewer.get("/scheduler/celery-status/").get_json()
    assert dashboard["status"] == "running" and dashboard["worker"]["pids"] == started["worker_pids"]
    restarted = operator.post("/restart_celery_beat").get_json()
    assert restarted["success"] is True, restarted
    assert viewer.get("/celery_status").get_json()["pids"] == restarted["new_pids"]
    assert operator.post("/scheduler/stop-celery/").get_json()["status"] == "success"
    assert viewer.get("/celery_status").get_json() == {"running": False, "pids": [], "count": 0, "hosts": []}
    assert viewer.get("/scheduler/celery-status/").get_json()["status"] == "stopped"


def _token_id(app, role):
    with app.app_context():
        found = users.user_for_token(app.extensions["test_tokens"][role])
        token = db.session.query(ApiToken).join(ApiToken.user).filter_by(username=found[0]).one()
        db.session.remove()
        return token.id


def test_a_revoked_token_is_refused_at_once(app):
    viewer = api_client(app, "viewer")
    assert viewer.get("/celery_status").status_code == 200  # its identity is in the cache now
    with app.app_context():
        users.revoke_token(_token_id(app, "viewer"))
        db.session.remove()
    assert viewer.get("/celery_status").status_code == 401


def test_a_disabled_user_is_refused_at_once(app):
    viewer = api_client(app, "viewer")
    assert viewer.get("/celery_status").status_code == 200
    with app.app_context():
        users.set_active("test-viewer", False)
        db.session.remove()
    assert viewer.get("/celery_status").status_code == 401


@pytest.fixture
def long_token_cache(monkeypatch):
    """A cache that outlives the test, so an answer from it is told from a lookup by what the database says."""
    monkeypatch.setattr(auth.tokens, "ttl_s", 3600.0)
    auth.tokens.clear()


def _revoke_behind_the_panels_back(app, token_id):
    """A write the process is not told of, as from another panel process: only the cache remembers the token."""
    with app.app_context():
        db.session.execute(update(ApiToken).where(ApiToken.id == token_id).values(revoked_at=datetime.utcnow()))
        db.session.commit()
        db.session.remove()


def test_post_is_never_served_from_the_identity_cache(app, long_token_cache):
    operator = api_client(app, "operator")
    assert operator.get("/celery_status").status_code == 200
    _revoke_behind_the_panels_back(app, _token_id(app, "operator"))
    assert operator.get("/celery_status").status_code == 200, "a read within the cache's time is served from it"
    assert operator.post("/scheduler/stop-celery/").status_code == 401, "a write is always checked afresh"
    assert operator.get("/celery_status").status_code == 401, "and what it found out, reads here know at once"


def test_a_revoke_through_another_panel_process_is_refused_at_once(app, long_token_cache):
    viewer = api_client(app, "viewer")
    assert viewer.get("/celery_status").status_code == 200  # cached here, for an hour
    _revoke_behind_the_panels_back(app, _token_id(app, "viewer"))
    ChangeMarker(app.config["INSTANCE_PATH"], "credentials").bump()  # what the other process's write does here
    assert viewer.get("/celery_status").status_code == 401


def test_a_lookup_begun_before_a_write_is_not_kept_after_it():
    cache = auth.TokenCache()
    before = 3  # the credentials marker's count when the lookup began; a revoke committed while it ran made it 4
    cache.put("key", auth.Identity("viewer", "viewer", "token"), before, cache.clock())
    assert cache.get("key", before + 1) is None
    assert cache.get("key", before) is not None


def test_a_cached_identity_expires_after_its_time():
    clock = FakeClock()
    cache = auth.TokenCache(ttl_s=2.0, clock=clock)
    cache.put("key", auth.Identity("viewer", "viewer", "token"), 0, clock())
    clock.now += 1.99
    assert cache.get("key", 0) is not None
    clock.now += 0.01
    assert cache.get("key", 0) is None
