"""Runs read back from the result backend after the panel was away keep what the panel knew of them.

The sample project on Redis stores results but not extended ones (no result_extended: the stored meta has no task
name, args, kwargs or worker). Runs are sent by the panel or by the project itself with its own celery, executed by
its real worker; the panel's event recorder is stopped and started again as a restart does.
"""
import threading

from models import utcnow
from panel.broker import publish, results
from panel.health import alerts
from panel.runlog import from_events
from tests.helpers import add_runs, api_client, ended, project_call, run_row, wait_for

WAIT_S = 60
SLOW_S = 15  # long enough that the seen runs still run when the recorder stops (one project send: seconds)


def _recorder_gone():
    wait_for(lambda: not any(t.name == "run-events" and t.is_alive() for t in threading.enumerate()), 10,
             "the event recorder to stop")


def _api(app, path):
    return api_client(app, "viewer").get(path).get_json()


def test_read_back_runs_keep_what_the_panel_saw_and_say_when_nobody_recorded_their_arguments(attached):
    celery, operator = attached.extensions["celery"], api_client(attached, "operator")
    stop = from_events.start(attached)
    try:
        assert operator.post("/scheduler/start-celery/").get_json()["status"] == "success"
        with attached.app_context():  # seen sent: the panel sends them (the way a retry or an ad-hoc run does)
            slow = [publish.send(celery, "proj.slow", [SLOW_S], {}).id for _ in range(3)]
        wait_for(lambda: all((r := run_row(attached, t)) and r.state == "STARTED" for t in slow), WAIT_S,
                 "the slow runs to be seen started")
        waiting = project_call(attached, "proj.fail", '["seen, failed away"]')  # received, waits for a process
        wait_for(lambda: (r := run_row(attached, waiting)) and r.worker, WAIT_S, "the waiting run to be seen received")
    finally:
        stop.set()
        _recorder_gone()
    seen = {t: run_row(attached, t) for t in [*slow, waiting]}
    assert all(r.status in ("pending", "running") for r in seen.values()), [r.state for r in seen.values()]
    unseen = [project_call(attached, "proj.add", f"[{n}, 1]") for n in range(2)] + [
        project_call(attached, "proj.fail", '["never seen"]')]
    everything = [*seen, *unseen]
    wait_for(lambda: all(results.stored(celery, t) for t in everything), WAIT_S, "the worker to end every run")
    assert results.stored(celery, unseen[0])["name"] is None, "the project stores extended results after all?"
    assert all(run_row(attached, t) is None for t in unseen), "recorded while the recorder was stopped?"

    stop = from_events.start(attached)  # the panel is back: the gap is read back from the result backend
    try:
        rows = {t: ended(attached, t, WAIT_S) for t in everything}
    finally:
        stop.set()
        _recorder_gone()

    for task_id in slow:
        row, before = rows[task_id], seen[task_id]
        assert (row.state, row.result) == ("SUCCESS", str(SLOW_S))
        kept = (row.task_name, row.args, row.kwargs, row.worker, row.started_at)
        assert kept == ("proj.slow", [SLOW_S], {}, before.worker, before.started_at) and before.worker
        assert row.runtime_s is not None and row.runtime_s >= SLOW_S - 1
    failed = rows[waiting]
    assert (failed.state, failed.task_name, failed.args, failed.worker) == (
        "FAILURE", "proj.fail", ["seen, failed away"], seen[waiting].worker)
    for task_id in unseen:
        detail = _api(attached, f"/api/runs/{task_id}")
        # (its worker may be known after all: the worker stores the result a moment before it sends the ending event,
        # which the recorder, back by then, may see; that event names no task and no arguments)
        known = {k: detail[k] for k in ("task", "args", "kwargs", "args_known")}
        assert known == {"task": None, "args": None, "kwargs": None, "args_known": False}
    assert [_api(attached, f"/api/runs/{t}")["result"] for t in unseen[:2]] == ["1", "2"]
    assert _api(attached, f"/api/runs/{slow[0]}")["args_known"] is True

    # Task filters and counts see the kept names, and never a made-up task.
    listed = {r["celery_task_id"] for r in _api(attached, "/api/runs?task=proj.fail&limit=500")["runs"]}
    assert waiting in listed and unseen[2] not in listed
    assert _api(attached, "/api/runs?task=unknown")["runs"] == []
    with attached.app_context():
        [alert] = alerts.check_failures(dict(attached.config, ALERT_FAILURES_THRESHOLD=2), utcnow())
    assert "2 failed runs" in alert["subject"] and "proj.fail: 1" in alert["body"], alert
    assert "(task not known): 1" in alert["body"] and "unknown" not in alert["body"], alert

    # Nobody knows the unseen runs' arguments: no Retry, a 409 that says why and what to set.
    answer = operator.post(f"/api/runs/{unseen[0]}/retry")
    why = answer.get_json()["message"]
    assert answer.status_code == 409 and "never recorded" in why and "result_extended = True" in why, why
    page = operator.get(f"/runs/{unseen[0]}").get_data(as_text=True)
    assert 'id="run-args-unknown"' in page and 'id="retry-run"' not in page and "result_extended = True" in page
    assert 'id="retry-run"' in operator.get(f"/runs/{slow[0]}").get_data(as_text=True)
    listing = operator.get("/runs?task=proj.add").get_data(as_text=True)
    assert "(task not known)" not in listing

    # Bulk retry: the dry run counts exactly what the real run sends.
    body = {"action": "retry", "ids": everything}
    dry = operator.post("/api/runs/bulk", json=dict(body, dry_run=True)).get_json()
    real = operator.post("/api/runs/bulk", json=dict(body, dry_run=False)).get_json()
    assert dry["applies"] == real["applies"] == real["done"] == len(real["new_ids"]) == 4, (dry, real)
    assert {f["celery_task_id"] for f in dry["failed"]} == {f["celery_task_id"] for f in real["failed"]} == set(unseen)
    assert "Would retry 4 of the 7" in dry["message"] and "3 cannot be sent again" in dry["message"]


def test_a_bulk_retry_dry_run_and_the_real_run_agree_run_by_run(make_app):
    """Arguments as values, as a repr only, and never recorded: one rule decides for the dry run and the real one."""
    app = make_app()
    ids = add_runs(app, [{"task_name": "tests.sample_tasks.add", "args": [1, 2]},
                         {"task_name": "tests.sample_tasks.add", "args": "(<object at 0x1>, ...", "kwargs": "{}"},
                         {"task_name": None, "args": None, "kwargs": None, "state": "FAILURE", "status": "failed"},
                         {"task_name": "tests.sample_tasks.add", "args": None, "kwargs": None}])
    client = api_client(app, "operator")
    body = {"action": "retry", "ids": ids}
    dry = client.post("/api/runs/bulk", json=dict(body, dry_run=True)).get_json()
    real = client.post("/api/runs/bulk", json=dict(body, dry_run=False)).get_json()
    assert (dry["matched"], dry["applies"], dry["done"]) == (4, 1, 0)
    assert (real["applies"], real["done"], len(real["new_ids"])) == (1, 1, 1)
    refused = {f["celery_task_id"]: f["reason"] for f in real["failed"]}
    assert refused == {f["celery_task_id"]: f["reason"] for f in dry["failed"]} and set(refused) == set(ids[1:])
    assert "a repr" in refused[ids[1]] and "task and arguments were never recorded" in refused[ids[2]]
    assert "arguments were never recorded" in refused[ids[3]]
    for task_id in ids[1:]:
        assert client.post(f"/api/runs/{task_id}/retry").status_code == 409
    listed = {r["celery_task_id"]: r for r in api_client(app, "viewer").get("/api/runs").get_json()["runs"]}
    assert [listed[t]["args_known"] for t in ids] == [True, True, False, False]
    assert listed[ids[2]]["task"] is None


def test_a_read_back_ending_fills_only_what_the_backend_has():
    """None never overwrites a known value; a run never seen gets what the backend has, and no made-up name."""
    from datetime import datetime, timezone

    from panel.runlog import backfill
    from panel.runlog.from_events import fold_batch
    start = 1_800_000_000.0
    received = {"type": "task-received", "uuid": "r1", "timestamp": start, "hostname": "w@h", "name": "proj.add",
                "args": "(1, 2)", "kwargs": "{}"}
    started = {"type": "task-started", "uuid": "r1", "timestamp": start + 1, "hostname": "w@h"}
    row = fold_batch({}, [received, started])["r1"]
    meta = {"task_id": "r1", "status": "SUCCESS", "result": 3, "name": None, "args": None, "kwargs": None,
            "worker": None, "date_done": datetime.fromtimestamp(start + 3, timezone.utc)}
    after = fold_batch({"r1": row}, [backfill.as_event(meta)])["r1"]
    assert (after["task_name"], after["args"], after["kwargs"], after["worker"]) == ("proj.add", [1, 2], {}, "w@h")
    assert (after["state"], after["result"], after["started_at"]) == ("SUCCESS", "3", row["started_at"])
    assert from_events._runtime(after) == 2.0
    never = fold_batch({}, [backfill.as_event(dict(meta, task_id="r2"))])["r2"]
    assert (never["task_name"], never["args"], never["worker"], never["state"]) == (None, None, None, "SUCCESS")
