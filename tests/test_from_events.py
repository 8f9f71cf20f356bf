"""The run log from task events, as pure logic and against a real database: order, duplicates, first ending."""
from datetime import datetime, timezone

import pytest

from models import Run, Schedule, db
from panel.runlog import from_events
from panel.runlog.from_events import fold_batch, new_row

T0 = 1_800_000_000.0  # an event time, in seconds since the epoch


def ev(kind, t, **fields):
    return {"type": f"task-{kind}", "uuid": "r1", "timestamp": T0 + t, "hostname": "w@h", **fields}


def naive(t):
    return datetime.fromtimestamp(T0 + t, timezone.utc).replace(tzinfo=None)


def fold(events, row=None):
    return fold_batch({"r1": row} if row else {}, events)["r1"]


LIFE = [ev("received", 0, name="proj.add", args="[1, 2]", kwargs="{}"), ev("started", 1),
        ev("succeeded", 2, result="3")]


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0), (2, 0, 1)])
def test_a_runs_events_in_any_arrival_order_give_the_same_row(order):
    row = fold([LIFE[i] for i in order])
    assert (row["status"], row["state"], row["result"], row["task_name"]) == ("completed", "SUCCESS", "3", "proj.add")
    assert (row["queued_at"], row["started_at"], row["finished_at"]) == (naive(0), naive(1), naive(2))
    assert row["args"] == [1, 2] and row["kwargs"] == {}


def test_events_that_arrive_twice_change_nothing_the_second_time():
    once = fold(LIFE)
    assert fold(LIFE, row=dict(once)) == once and fold(LIFE + LIFE) == once


def test_the_first_ending_stays_unless_the_worker_really_ran_the_task_again_later():
    cancelled = dict(new_row("r1"), status="failed", state="REVOKED", finished_at=naive(5),
                     error="Task cancelled manually", task_name="proj.slow")
    late_failure = fold([ev("failed", 6, exception="Terminated(15)"), ev("revoked", 6, terminated=True, signum=15)],
                        row=dict(cancelled))
    assert (late_failure["state"], late_failure["error"]) == ("REVOKED", "Task cancelled manually")
    assert fold([ev("started", 4)], row=dict(cancelled))["status"] == "failed", "a start before the ending"
    rerun = fold([ev("started", 9)], row=dict(cancelled))
    assert (rerun["status"], rerun["finished_at"]) == ("running", None), "a start after the ending is the truth"


@pytest.mark.parametrize("retry_first", [True, False])
def test_a_retry_counts_once_whichever_of_its_event_and_its_message_comes_first(retry_first):
    retried, again = ev("retried", 2, exception="RuntimeError('down')"), ev("received", 2, retries=1,
                                                                            eta="2027-01-15T08:00:02+00:00")
    row = fold([ev("received", 0, name="proj.flaky"), ev("started", 1)] + ([retried, again] if retry_first
                                                                          else [again, retried]))
    assert (row["status"], row["state"], row["retries"]) == ("pending", "RETRY", 1)
    assert "down" in row["error"]


def test_a_message_rejected_to_be_requeued_stays_open_and_one_rejected_for_good_ends():
    assert fold([ev("received", 0), ev("rejected", 1, requeue=True)])["status"] == "pending"
    row = fold([ev("received", 0), ev("rejected", 1, requeue=False)])
    assert (row["status"], row["state"]) == ("failed", "REJECTED")


@pytest.mark.parametrize("shown, kept", [
    ("[1, 2]", [1, 2]), ("(1,)", [1]), ("{'a': 1}", {"a": 1}), ("()", []),
    ("[<object object at 0x7f>]", "[<object object at 0x7f>]"), ("['aaaa', 'bbb...", "['aaaa', 'bbb..."),
    ("'x'", "'x'")])
def test_args_read_back_from_the_events_repr_or_kept_as_the_repr_when_they_do_not_parse(shown, kept):
    assert fold([ev("received", 0, args=shown)])["args"] == kept


def test_the_writer_upserts_a_batch_once_and_a_replay_writes_nothing(make_app):
    app = make_app()
    with app.app_context():
        writer = from_events.EventWriter(db.engine)
        assert writer.write(LIFE[2:] + LIFE[:1]) == 1
        assert writer.write([LIFE[1]]) == 0, "a start before the stored ending changes nothing"
        assert writer.write(LIFE) == 0, "a replayed batch changes nothing"
        row = db.session.execute(db.select(Run)).scalar_one()
        assert (row.status, row.result, row.args, row.worker) == ("completed", "3", [1, 2], "w@h")


def test_a_scheduled_runs_events_move_its_schedules_badge(make_app):
    app = make_app()
    with app.app_context():
        schedule = Schedule(name="every minute", task="proj.add", args=[1, 2], kwargs={}, interval_seconds=60)
        db.session.add(schedule)
        db.session.flush()
        db.session.add(Run(celery_task_id="r1", task_name="proj.add", scheduled_task_id=schedule.id,
                           status="pending", state="PENDING", args=[1, 2], kwargs={}, queued_at=naive(0)))
        sid = schedule.id
        db.session.commit()
        writer = from_events.EventWriter(db.engine)
        badges = []
        for batch in (LIFE[:2], LIFE[2:]):
            writer.write(batch)
            badges.append(db.session.execute(db.select(Schedule.status).where(Schedule.id == sid)).scalar_one())
            db.session.rollback()
        assert badges == ["running", "completed"]


def test_a_result_read_back_from_the_backend_never_undoes_an_ending_the_log_already_has():
    from panel.runlog import backfill
    done = datetime.fromtimestamp(T0 + 5, timezone.utc)
    meta = {"task_id": "r1", "status": "SUCCESS", "result": 3, "date_done": done, "name": "proj.add", "args": [1, 2]}
    fresh = fold([backfill.as_event(meta)])
    seen = (fresh["status"], fresh["result"], fresh["args"], fresh["finished_at"])
    assert seen == ("completed", "3", [1, 2], naive(5))
    cancelled = fold([ev("received", 0), ev("revoked", 1)])
    after = fold([backfill.as_event(dict(meta, status="FAILURE", result=ValueError("x")))], row=dict(cancelled))
    ending = ("status", "state", "error", "finished_at")
    expected = ["failed", "REVOKED", "Task revoked", naive(1)]
    assert [after[k] for k in ending] == [cancelled[k] for k in ending] == expected
    assert after["task_name"] == "proj.add", "what the backend adds (the name) is kept"


def test_a_run_recorded_from_events_keeps_its_runtime_for_slowest_first(make_app):
    app = make_app()
    with app.app_context():
        writer = from_events.EventWriter(db.engine)
        assert writer.write(LIFE[:2]) == 1  # running: no runtime yet
        assert db.session.execute(db.select(Run.runtime_s)).scalar_one() is None
        db.session.remove()  # no read transaction of the test's own beside the writer's
        assert writer.write(LIFE[2:]) == 1
        assert db.session.execute(db.select(Run.runtime_s)).scalar_one() == pytest.approx(1.0)
