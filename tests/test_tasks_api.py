"""The scheduled-task JSON API: validation, lookups, toolbar controls, run now."""
import pytest

from models import ScheduleChange, db
from panel.host import processes
from tests.helpers import GOOD, api_client, count_tasks, free_port, wait_for


def test_create_read_edit_delete_a_task(client):
    created = client.post("/api/tasks", json=GOOD)
    assert created.status_code == 201
    task = created.get_json()
    assert {k: task[k] for k in GOOD} == GOOD
    assert task["enabled"] is True and task["status"] == "pending" and task["run_count"] == 0
    assert "crontab" not in task and task["last_run_at"] is None
    assert client.get("/api/tasks").get_json()["tasks"] == [task]
    assert client.get(f"/api/tasks/{task['id']}").get_json() == task

    edited = client.put(f"/api/tasks/{task['id']}", json={"crontab": "*/5 * * * *"}).get_json()
    assert edited["crontab"] == "*/5 * * * *" and "interval_seconds" not in edited and edited["name"] == GOOD["name"]
    assert client.post(f"/api/tasks/{task['id']}/disable").get_json()["enabled"] is False
    assert client.post(f"/api/tasks/{task['id']}/enable").get_json()["enabled"] is True

    assert client.delete(f"/api/tasks/{task['id']}").get_json()["status"] == "success"
    assert client.get(f"/api/tasks/{task['id']}").status_code == 404


@pytest.mark.parametrize("change, field", [
    ({"name": ""}, "name"),
    ({"task": "no.such.task"}, "task"),
    ({"task": "celery.backend_cleanup"}, "task"),
    ({"args": "not json ["}, "args"),
    ({"kwargs": [1, 2]}, "kwargs"),
    ({"interval_seconds": 0}, "interval_seconds"),
    ({"interval_seconds": 10**15}, "interval_seconds"),
    ({"interval_seconds": None, "crontab": "61 * * * *"}, "crontab"),
    ({"interval_seconds": None, "crontab": "every day"}, "crontab"),
    ({"interval_seconds": None}, "interval_seconds"),
])
def test_bad_input_is_400_naming_the_field_and_saves_nothing(app, client, change, field):
    resp = client.post("/api/tasks", json=dict(GOOD, **change))
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["status"] == "error" and body["field"] == field and field in body["message"]
    assert count_tasks(app) == 0


def test_a_bad_edit_changes_nothing_and_names_are_unique(app, client):
    task = client.post("/api/tasks", json=GOOD).get_json()
    other = client.post("/api/tasks", json=dict(GOOD, name="other")).get_json()
    resp = client.put(f"/api/tasks/{other['id']}", json={"name": GOOD["name"]})
    assert resp.status_code == 409 and resp.get_json()["field"] == "name"  # a conflict with what exists
    resp = client.put(f"/api/tasks/{task['id']}", json={"interval_seconds": 60, "args": "[oops"})
    assert resp.status_code == 400 and resp.get_json()["field"] == "args"
    assert client.get(f"/api/tasks/{task['id']}").get_json()["interval_seconds"] == 300


@pytest.mark.parametrize("payload, content_type", [(b"{not json", "application/json"), (b"[1, 2]", "application/json"),
                                                   (b"name=x", "application/x-www-form-urlencoded")])
def test_malformed_bodies_are_400(client, payload, content_type):
    resp = client.post("/api/tasks", data=payload, content_type=content_type)
    assert resp.status_code == 400 and resp.get_json()["field"] == "body"


@pytest.mark.parametrize("method, url", [
    ("GET", "/api/tasks/4242"), ("PUT", "/api/tasks/4242"), ("DELETE", "/api/tasks/4242"),
    ("POST", "/api/tasks/4242/run"), ("POST", "/api/tasks/4242/enable"), ("POST", "/api/tasks/4242/disable"),
    ("GET", "/api/tasks/4242/runs"), ("GET", "/api/runs/no-such-run"),
    ("POST", "/scheduler/cancel-task/4242/"), ("POST", "/scheduler/cancel-run/no-such-run/"),
    ("GET", "/api/tasks/99999999999999999999"),
])
def test_unknown_ids_are_404_json(client, method, url):
    resp = client.open(url, method=method, json={"name": "x"})
    assert resp.status_code == 404 and resp.get_json()["status"] == "error"


def test_cancelling_a_task_that_is_not_running_is_409(client):
    task = client.post("/api/tasks", json=GOOD).get_json()
    resp = client.post(f"/scheduler/cancel-task/{task['id']}/")
    assert resp.status_code == 409 and "is not running" in resp.get_json()["message"]


def test_run_now_with_the_broker_down_is_503_and_records_nothing(make_app):
    app = make_app(CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")
    client = api_client(app)
    task = client.post("/api/tasks", json=GOOD).get_json()
    resp = client.post(f"/api/tasks/{task['id']}/run")
    assert resp.status_code == 503 and resp.get_json()["status"] == "error"
    assert client.get(f"/api/tasks/{task['id']}/runs").get_json()["runs"] == []
    assert client.post("/scheduler/run-all-tasks/").status_code == 503


def test_stop_and_start_all_tasks_flip_every_task_and_move_the_marker(app, client):
    for name in ("a", "b", "c"):
        client.post("/api/tasks", json=dict(GOOD, name=name))
    with app.app_context():
        before = db.session.get(ScheduleChange, 1).version
    stopped = client.post("/scheduler/stop-all-tasks/").get_json()
    assert stopped == {"status": "success", "message": "Disabled 3 task(s)", "disabled": 3}
    assert all(not t["enabled"] for t in client.get("/api/tasks").get_json()["tasks"])
    started = client.post("/scheduler/start-all-tasks/").get_json()
    assert started["enabled"] == 3 and all(t["enabled"] for t in client.get("/api/tasks").get_json()["tasks"])
    with app.app_context():
        assert db.session.get(ScheduleChange, 1).version == before + 2


def test_run_now_and_run_all_are_recorded_and_executed(app, client, site):
    ok = client.post("/api/tasks", json=dict(GOOD, name="ok", args=[f"{site.base}/ok"])).get_json()
    client.post("/api/tasks", json=dict(GOOD, name="also", args=[f"{site.base}/ok"]))
    client.post("/api/tasks", json=dict(GOOD, name="off", args=[f"{site.base}/ok"], enabled=False))
    assert app.extensions["supervisor"].start((processes.WORKER,))[processes.WORKER].ok
    sent = client.post(f"/api/tasks/{ok['id']}/run").get_json()
    run_url = f"/api/runs/{sent['celery_task_id']}"
    done = wait_for(lambda: (r := client.get(run_url).get_json()).get("status") == "completed" and r, 20, "the run")
    assert done["scheduled_task_id"] == ok["id"] and done["worker"] and done["runtime_s"] >= 0
    assert '"status_code": 200' in done["result"]
    task = client.get(f"/api/tasks/{ok['id']}").get_json()
    assert task["run_count"] == 1 and task["last_run_at"] and task["status"] == "completed"

    everything = client.post("/scheduler/run-all-tasks/").get_json()
    assert everything["count"] == 2 and {t["name"] for t in everything["tasks"]} == {"ok", "also"}
    for cid in everything["celery_task_ids"]:
        wait_for(lambda: client.get(f"/api/runs/{cid}").get_json().get("status") == "completed", 20, "run-all runs")
    assert len(client.get(f"/api/tasks/{ok['id']}/runs").get_json()["runs"]) == 2


def test_a_retrying_run_shows_its_count_last_error_and_next_attempt(app, client):
    assert app.extensions["supervisor"].start((processes.WORKER,))[processes.WORKER].ok
    result = app.extensions["celery"].send_task("tests.always_fails", kwargs={"countdown": 30})
    # The retry's send (count, next attempt) and the worker's retry signal (the error) are two writes: wait for both.
    run = wait_for(lambda: (r := client.get(f"/api/runs/{result.id}").get_json()).get("retries", 0) >= 1
                   and r.get("next_retry_at") and r.get("error") and r, 20, "the first retry")
    assert run["state"] == "RETRY" and run["status"] == "pending"
    assert "upstream is down" in run["error"]
    assert run["next_retry_at"] > run["started_at"]
