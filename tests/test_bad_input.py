"""Bad input is a 400 (or 413) naming the field and the limit, never a 500, on SQLite and PostgreSQL."""
import base64
import json

import pytest

from panel.cluster import monitor
from panel.web import limits
from tests.helpers import GOOD, api_client, count_tasks, start_worker, wait_for

CRONTABS = ["*/-1 * * * *", "-1 * * * *", "1,2, * * * *", ", * * * *", "*/ * * * *", "*/0 * * * *", "* * * * 8"]
# Control characters, bidi embeddings, overrides and isolates, line separators: never in a name a person reads.
UNSAFE = ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\u2028", "\u202a", "\u202e", "\u2066", "\u2069"]
NON_FINITE = ["Infinity", "-Infinity", "NaN", "1e400", "-1e400"]


def refused(resp, field, status=400):
    """The answer is our JSON error naming `field`."""
    body = resp.get_json()
    assert resp.status_code == status, (resp.status_code, resp.get_data()[:300])
    assert body["status"] == "error" and body["field"] == field, body
    return body


def nested(depth, leaf=1):
    """A JSON text nested `depth` arrays deep, built as text: json.dumps itself would recurse too deep."""
    return "[" * depth + json.dumps(leaf) + "]" * depth


def raw(client, path, text, method="POST"):
    return client.open(path, method=method, data=text.encode("utf-8", "surrogatepass"), content_type="application/json")


@pytest.fixture
def schedule(client):
    return client.post("/api/tasks", json=GOOD).get_json()


@pytest.mark.parametrize("crontab", CRONTABS)
def test_a_crontab_celery_cannot_read_is_400_naming_crontab(app, client, schedule, crontab):
    refused(client.post("/api/tasks", json=dict(GOOD, name="other", interval_seconds=None, crontab=crontab)), "crontab")
    refused(client.put(f"/api/tasks/{schedule['id']}", json={"crontab": crontab}), "crontab")
    assert count_tasks(app) == 1 and client.get(f"/api/tasks/{schedule['id']}").get_json() == schedule


@pytest.mark.parametrize("query, span", [
    ("until=9999-12-31", {}),  # to the end of the calendar's last day: no end at all
    ("since=0001-01-01T00:00:00%2B01:00", {"since": "0001-01-01T00:00:00Z"}),  # shifted before year 1: year 1
    ("since=9999-12-31T23:59:59-01:00", {"since": "9999-12-31T23:59:59.999999Z"}),
    ("until=0001-01-01", {"until": "0001-01-02T00:00:00Z"}),
])
def test_dates_at_the_edge_of_the_calendar_filter_without_overflowing(make_app, backend, query, span):
    client = api_client(make_app(backend))
    assert client.get(f"/api/runs?{query}").get_json()["filter"] == span
    for path in (f"/api/runs/export?{query}", f"/api/runs/export?format=json&{query}", f"/runs?{query}"):
        resp = client.get(path)
        assert resp.status_code == 200 and resp.get_data()
    for before in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "9999-12-31"):
        resp = client.post("/api/runs/delete", json={"before": before, "dry_run": True})
        assert resp.status_code == 200 and resp.get_json()["would_delete"] == 0


@pytest.mark.parametrize("query, field", [("since=10000-01-01", "since"), ("until=2026-13-01", "until"),
                                          ("since=2026-01-02&until=2026-01-01", "until")])
def test_a_date_that_does_not_read_is_400_on_the_api_and_a_message_on_the_page(client, query, field):
    refused(client.get(f"/api/runs?{query}"), field)
    refused(client.get(f"/api/runs/export?{query}"), field)
    page = client.get(f"/runs?{query}")
    assert page.status_code == 400 and f"{field}:" in page.get_data(as_text=True)


def _cursor(text):
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    _cursor("2026-01-01T00:00:00|99999999999999999999999"), _cursor("2026-01-01T00:00:00|-1"),
    _cursor("2026-01-01T00:00:00|\u0663"), _cursor("2026-01-01T00:00:00|1_0"), _cursor("99999-01-01T00:00:00|1"),
    _cursor("2026-01-01T00:00:00+01:00|1"), "%00", "!!!",
])
def test_a_cursor_this_panel_did_not_hand_out_is_400(make_app, backend, cursor):
    client = api_client(make_app(backend))
    refused(client.get(f"/api/runs?cursor={cursor}"), "cursor")
    refused(client.get(f"/api/runs/export?cursor={cursor}"), "cursor")
    assert client.get(f"/runs?cursor={cursor}").status_code == 400


@pytest.mark.parametrize("path", ["/api/audit", "/api/process-events", "/api/alerts"])
@pytest.mark.parametrize("before", ["99999999999999999999", "-1", "0", "\u0663", "1_0", "1e3"])
def test_a_before_id_out_of_range_is_400_naming_before(client, path, before):
    refused(client.get(f"{path}?before={before}"), "before")


def test_the_audit_page_with_an_overflowing_before_says_so_and_is_not_a_500(make_app, backend):
    client = api_client(make_app(backend))
    page = client.get("/audit?before=99999999999999999999")
    assert page.status_code == 200
    assert "before:" in page.get_data(as_text=True) and "the filter was left out" in page.get_data(as_text=True)


@pytest.mark.parametrize("number", [*NON_FINITE, str(10**30), str(2**63)])
def test_a_huge_interval_is_400_naming_the_field(app, client, number):
    body = '{"name": "x", "task": "crawl_url", "interval_seconds": %s}' % number
    refused(raw(client, "/api/tasks", body), "interval_seconds")
    assert count_tasks(app) == 0


@pytest.mark.parametrize("number", NON_FINITE)
def test_nan_and_infinity_are_400_naming_the_field(app, client, number):
    refused(raw(client, "/api/tasks", '{"name": "x", "task": "crawl_url", "interval_seconds": 5, '
                                      '"args": [%s]}' % number), "args")
    refused(raw(client, "/api/tasks", '{"name": "x", "task": "crawl_url", "interval_seconds": 5, '
                                      '"kwargs": {"a": [%s]}}' % number), "kwargs")
    refused(raw(client, "/api/registered-tasks/crawl_url/send", '{"args": [%s]}' % number), "args")
    refused(raw(client, "/api/workers/nobody/pool-grow", '{"n": %s}' % number), "n")
    refused(raw(client, "/api/registered-tasks/tests.add/time-limit", '{"soft": %s}' % number), "soft")
    assert count_tasks(app) == 0


@pytest.mark.parametrize("value", ['"\u0663"', '"3"', '"1_0"', '" 3 "', "true", "3.5"])
def test_a_number_must_be_a_json_number_not_text_or_unicode_digits(app, client, value):
    refused(raw(client, "/api/tasks", '{"name": "x", "task": "crawl_url", "interval_seconds": %s}' % value),
            "interval_seconds")
    refused(raw(client, "/api/workers/nobody/pool-grow", '{"n": %s}' % value), "n")
    assert count_tasks(app) == 0


@pytest.mark.parametrize("query", ["limit=\u0663", "limit=1_0", "limit=%203", "limit=+3", "limit=0x3"])
def test_a_number_in_the_url_is_ascii_digits_only(client, query):
    field = query.split("=")[0]
    refused(client.get(f"/api/runs?{query}"), field)
    refused(client.get(f"/api/audit?{query}"), field)
    refused(client.get(f"/api/runs/per-minute?{query.replace('limit', 'minutes')}"), "minutes")
    refused(client.get(f"/api/logs/worker?{query.replace('limit', 'lines')}"), "lines")


@pytest.mark.parametrize("char", UNSAFE + ["\ud800"])
@pytest.mark.parametrize("field", ["name", "task"])
def test_control_bidi_and_surrogate_characters_in_a_schedule_name_are_400(make_app, backend, char, field):
    app = make_app(backend)
    client = api_client(app)
    text = json.dumps(dict(GOOD, **{field: f"crawl{char}home"}))  # ensure_ascii: a lone surrogate as \ud800
    body = refused(raw(client, "/api/tasks", text), field)
    assert f"U+{ord(char):04X}" in body["message"]
    task = client.post("/api/tasks", json=GOOD).get_json()
    refused(raw(client, f"/api/tasks/{task['id']}", json.dumps({field: f"x{char}"}), "PUT"), field)
    assert count_tasks(app) == 1


@pytest.mark.parametrize("char", UNSAFE + ["\ud800"])
@pytest.mark.parametrize("name", ["task", "worker", "q"])
def test_control_characters_in_a_run_filter_are_400_on_the_api_and_a_message_on_the_page(make_app, backend, char,
                                                                                        name):
    client = api_client(make_app(backend))
    value = "%ED%A0%80" if char == "\ud800" else "".join(f"%{b:02X}" for b in char.encode())
    if char == "\ud800":  # a URL carries bytes: an encoded lone surrogate is not UTF-8, so it reads as text
        assert client.get(f"/api/runs?{name}=a{value}").status_code == 200
        return
    refused(client.get(f"/api/runs?{name}=a{value}"), name)
    refused(client.get(f"/api/runs/export?{name}=a{value}"), name)
    page = client.get(f"/runs?{name}=a{value}")
    assert page.status_code == 400 and f"{name}:" in page.get_data(as_text=True)


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\u202e"])
def test_control_characters_elsewhere_are_400_naming_the_field(make_app, backend, char):
    client = api_client(make_app(backend))
    quoted = "".join(f"%{b:02X}" for b in char.encode())
    refused(client.post("/api/runs/delete", json={"before": "2026-01-01", "task": f"a{char}"}), "task")
    refused(client.get(f"/api/audit?actor=a{quoted}"), "actor")
    refused(client.get(f"/api/audit?action=a{quoted}"), "action")
    refused(client.post("/api/registered-tasks/crawl_url/send", json={"queue": f"a{char}"}), "queue")
    for method, path, field in (("GET", "/api/workers/a{}", "name"), ("POST", "/api/workers/a{}/pool-grow", "name"),
                                ("GET", "/api/runs/a{}", "celery_task_id"), ("POST", "/api/queues/a{}/purge", "name"),
                                ("POST", "/api/registered-tasks/a{}/send", "task_name"),
                                ("POST", "/scheduler/cancel-run/a{}/", "celery_task_id")):
        refused(client.open(path.format(quoted), method=method, json={"confirm": True}), field)


@pytest.mark.parametrize("where", ["args", "kwargs"])
def test_a_lone_surrogate_in_args_is_400_naming_the_field(app, client, where):
    value = '["\\ud800"]' if where == "args" else '{"\\ud800": 1}'
    refused(raw(client, "/api/tasks", '{"name": "x", "task": "crawl_url", "interval_seconds": 5, "%s": %s}'
                % (where, value)), where)
    refused(raw(client, "/api/registered-tasks/crawl_url/send", '{"%s": %s}' % (where, value)), where)
    assert count_tasks(app) == 0


def test_a_body_over_the_limit_is_413_in_the_json_error_shape(app, client):
    big = json.dumps(dict(GOOD, args=["x" * (app.config["MAX_CONTENT_LENGTH"] + 1)]))
    body = refused(client.post("/api/tasks", data=big, content_type="application/json"), "body", 413)
    assert str(app.config["MAX_CONTENT_LENGTH"]) in body["message"]
    ten_mb = json.dumps(dict(GOOD, args=["x" * 10 * 1024 * 1024]))
    refused(client.post("/api/tasks", data=ten_mb, content_type="application/json"), "body", 413)
    assert count_tasks(app) == 0


@pytest.mark.parametrize("where", ["args", "kwargs"])
def test_args_over_the_size_limit_are_400_naming_the_field_and_the_limit(app, client, schedule, where):
    value = ["x" * limits.ARGS_BYTES_MAX] if where == "args" else {"k": "x" * limits.ARGS_BYTES_MAX}
    for resp in (client.post("/api/tasks", json=dict(GOOD, name="big", **{where: value})),
                 client.put(f"/api/tasks/{schedule['id']}", json={where: value}),
                 client.post("/api/registered-tasks/crawl_url/send", json={where: value})):
        assert str(limits.ARGS_BYTES_MAX) in refused(resp, where)["message"]
    assert count_tasks(app) == 1 and client.get(f"/api/tasks/{schedule['id']}").get_json() == schedule


@pytest.mark.parametrize("depth", [limits.ARGS_DEPTH_MAX + 1, 480, 5000])
@pytest.mark.parametrize("where", ["args", "kwargs"])
def test_args_nested_past_the_limit_are_400_naming_the_field_and_the_limit(app, client, schedule, depth, where):
    value = nested(depth) if where == "args" else '{"deep": %s}' % nested(depth - 1)  # `depth` levels in all
    for path, method, extra in (("/api/tasks", "POST", '"name": "deep", "task": "crawl_url", "interval_seconds": 5, '),
                                (f"/api/tasks/{schedule['id']}", "PUT", ""),
                                ("/api/registered-tasks/crawl_url/send", "POST", "")):
        body = refused(raw(client, path, '{%s"%s": %s}' % (extra, where, value), method), where)
        assert str(limits.ARGS_DEPTH_MAX) in body["message"]
    assert count_tasks(app) == 1 and client.get(f"/api/tasks/{schedule['id']}").get_json() == schedule


def test_args_at_the_limits_are_accepted(client):
    deepest = json.loads(nested(limits.ARGS_DEPTH_MAX - 1))
    created = client.post("/api/tasks", json=dict(GOOD, args=deepest, kwargs={"k": "x" * 1000}))
    assert created.status_code == 201 and created.get_json()["args"] == deepest


@pytest.mark.parametrize("change, field", [({"name": "n" * 201}, "name"), ({"task": "t" * 201}, "task"),
                                           ({"crontab": "* * * * " + "*" * 200, "interval_seconds": None}, "crontab")])
def test_strings_past_their_length_are_400(app, client, change, field):
    refused(client.post("/api/tasks", json=dict(GOOD, **change)), field)
    assert count_tasks(app) == 0


def test_405_answers_carry_allow_on_every_route(app, client):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule
        for name, value in (("<int:task_id>", "1"), ("<run_id:celery_task_id>", "r1"),
                            ("<any(worker, beat):program>", "worker")):
            path = path.replace(name, value)
        path = "/".join("x" if part.startswith("<") else part for part in path.split("/"))
        allowed = set().union(*(r.methods for r in app.url_map.iter_rules() if r.rule == rule.rule))
        for method in {"GET", "POST", "PUT", "PATCH", "DELETE"} - allowed:
            resp = client.open(path, method=method)
            assert resp.status_code == 405, (method, path, resp.status_code)
            assert set(resp.headers["Allow"].replace(" ", "").split(",")) == allowed, (method, path)


def test_process_logs_do_not_show_absolute_paths(app, client):
    for program in ("worker", "beat"):
        body = client.get(f"/api/logs/{program}").get_json()
        assert not body["path"].startswith("/") and app.instance_path not in json.dumps(body)
        assert body["path"] == f"logs/{program}.log"


def test_pool_grow_is_bounded_per_call_and_in_total(make_app):
    app = make_app(WORKER_CONCURRENCY=2, WORKER_POOL_MAX=4)
    client = api_client(app)
    body = refused(client.post("/api/workers/nobody/pool-grow", json={"n": limits.POOL_STEP_MAX + 1}), "n")
    assert str(limits.POOL_STEP_MAX) in body["message"]
    stop_monitor = monitor.start(app)
    try:
        start_worker(app)
        name = wait_for(lambda: [w["name"] for w in client.get("/api/workers").get_json()["workers"] if w["online"]],
                        30, "the worker online")[0]
        assert client.post(f"/api/workers/{name}/pool-grow", json={"n": 2}).status_code == 200
        assert "at most 4" in refused(client.post(f"/api/workers/{name}/pool-grow", json={"n": 1}), "n")["message"]
        assert "at most 4" in refused(client.post(f"/api/workers/{name}/autoscale", json={"max": 5}), "max")["message"]
        wait_for(lambda: len(client.get(f"/api/workers/{name}").get_json()["live"]["stats"]["pool"]["processes"]) == 4,
                 30, "the pool to have the 4 processes it may have")  # a prefork pool grows on its next tick
        assert "at most 4" in refused(client.post(f"/api/workers/{name}/pool-grow", json={"n": 1}), "n")["message"]
    finally:
        stop_monitor.set()
