"""One bulk request revokes 10,000 queued runs, one deletes 100,000 finished runs (private Redis, SQLite).

The 10,000 runs are really sent (to a queue no worker consumes) while a worker on the default queue is up to take
the revokes. The answer comes once the revokes are sent and the rows ended; the workers' acknowledgement follows in
the audit log, and its time is printed too. Baselines in the same run: the same revoke with `confirm` (the answer
waits for the workers, as before), one cancel request per queued run (200 of them, per-run cost), and the admin's
date-based delete (POST /api/runs/delete) of the same 100,000 rows.
"""
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import print_rows, private_stack, row, summary  # noqa: E402
from models import Run, db, utcnow  # noqa: E402
from panel.runlog import recorder  # noqa: E402
from panel.security import audit  # noqa: E402
from panel.web.runs import CONFIRMED  # noqa: E402
from tests.helpers import (
    api_client,  # noqa: E402
    start_worker,  # noqa: E402
)

QUEUED = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
FINISHED = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
ONE_BY_ONE = 200
REVOKE_TARGET_MS = 2_000
CONFIRM_WAIT_S = 120
DELETE_ROUNDS = 3


def send_parked(app, n):
    celery = app.extensions["celery"]
    began = time.perf_counter()
    ids = [celery.send_task("tests.add", args=[i, i], queue="parked").id for i in range(n)]
    recorder.flush()  # this process's sends are recorded by its writer thread: their rows, before they are counted
    print(f"sent {n:,} runs to a queue no worker consumes in {time.perf_counter() - began:.1f} s")
    return ids


def seed_finished(app, n):
    """n finished runs a year old, inserted with one executemany."""
    at = utcnow() - timedelta(days=365)
    rows = [{"celery_task_id": str(uuid.uuid4()), "task_name": "crawl_url", "status": "completed", "state": "SUCCESS",
             "args": [], "kwargs": {}, "queued_at": at, "started_at": at, "finished_at": at, "runtime_s": 0.0,
             "retries": 0} for _ in range(n)]
    with app.app_context():
        db.session.execute(Run.__table__.insert(), rows)
        db.session.commit()
        db.session.remove()


def timed_post(client, url, body):
    began = time.perf_counter()
    resp = client.post(url, json=body)
    elapsed = (time.perf_counter() - began) * 1000
    assert resp.status_code == 200, resp.get_json()
    return elapsed, resp.get_json()


def confirmation(app, after_id):
    """The audit record of a bulk revoke's acknowledgement once it is written (bounded wait), else None."""
    deadline = time.monotonic() + CONFIRM_WAIT_S
    while time.monotonic() < deadline:
        with app.app_context():
            found = [e for e in audit.events(action=CONFIRMED) if e.id > after_id]
            detail = found[0].detail if found else None
            db.session.remove()
        if detail:
            return detail
        time.sleep(0.05)
    return None


def last_audit_id(app):
    with app.app_context():
        newest = audit.events(limit=1)
        db.session.remove()
    return newest[0].id if newest else 0


def bench_revoke(app, client):
    """(answered ms, acknowledged ms, the same waiting for the workers ms, one-by-one ms a run)."""
    parked = send_parked(app, QUEUED)
    before = last_audit_id(app)
    began = time.perf_counter()
    ms, body = timed_post(client, "/api/runs/bulk", {"action": "revoke", "filter": {"status": "PENDING"}})
    detail = confirmation(app, before)
    acked_ms = (time.perf_counter() - began) * 1000
    assert len(parked) == body["done"] and detail, (body, detail)
    print(f"bulk revoke: answered in {ms:,.0f} ms for {body['done']:,} runs ended ({body['matched']:,} matched); "
          f"the audit log had the acknowledgement {acked_ms:,.0f} ms after the request: {detail}")
    send_parked(app, QUEUED)
    waited_ms, waited = timed_post(client, "/api/runs/bulk", {"action": "revoke", "filter": {"status": "PENDING"},
                                                             "confirm": True})
    print(f"baseline: the same with confirm (the answer waits for the workers, as every bulk revoke did before): "
          f"{waited_ms:,.0f} ms, acknowledged by {waited['acknowledged_by']}")
    others = send_parked(app, ONE_BY_ONE)
    began = time.perf_counter()
    for cid in others:
        assert client.post(f"/scheduler/cancel-run/{cid}/").status_code == 200
    each_ms = (time.perf_counter() - began) * 1000 / ONE_BY_ONE
    print(f"baseline: one cancel request per run: {each_ms:.2f} ms a run; {QUEUED:,} one by one would take "
          f"~{each_ms * QUEUED / 1000:.0f} s")
    return ms, acked_ms, waited_ms, each_ms


def bench_delete(app, client):
    bulk_ms, date_ms = [], []
    for _ in range(DELETE_ROUNDS):
        seed_finished(app, FINISHED)
        ms, body = timed_post(client, "/api/runs/bulk", {"action": "delete", "filter": {"status": "SUCCESS",
                                                                                       "until": "2100-01-01"}})
        assert body["done"] == FINISHED, body
        bulk_ms.append(ms)
        seed_finished(app, FINISHED)
        ms, body = timed_post(client, "/api/runs/delete", {"older_than_days": 0, "states": ["SUCCESS"]})
        date_ms.append(ms)
    print(summary(f"bulk delete of {FINISHED:,} finished runs", bulk_ms) + f"   rows {FINISHED:,}")
    print(summary(f"baseline: /api/runs/delete of {FINISHED:,}", date_ms))
    print(f"bulk delete / date delete median ratio {statistics.median(bulk_ms) / statistics.median(date_ms):.2f}")


def results():
    with private_stack(CELERY_IMPORTS="bench.bench_tasks,tests.sample_tasks", WORKER_LOGLEVEL="warning",
                       BULK_MAX_RUNS=max(QUEUED, FINISHED)) as (app, _):
        client = api_client(app, "admin")
        start_worker(app)
        answered, acked, waited, each = bench_revoke(app, client)
        with app.app_context():  # the revoked runs go before the delete rounds count their own
            db.session.query(Run).delete()
            db.session.commit()
            db.session.remove()
        bench_delete(app, client)
    return [row(f"bulk revoke of {QUEUED:,} queued runs, answered", answered, "ms", f"< {REVOKE_TARGET_MS:,} ms",
                answered < REVOKE_TARGET_MS, f"waiting for the workers {waited:,.0f} ms"),
            row(f"bulk revoke of {QUEUED:,}, acknowledgement in the audit log", acked, "ms", "follows (no target)",
                True, f"one by one ~{each * QUEUED / 1000:,.0f} s")]


def main():
    print_rows(results())


if __name__ == "__main__":
    main()
