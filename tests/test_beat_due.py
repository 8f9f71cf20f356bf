"""Pure logic: a schedule's due times from stored times, and what each catch-up policy sends after downtime."""
from datetime import datetime, timedelta, timezone

import pytest
from celery import Celery
from celery.schedules import crontab, schedule as interval

from panel.beat import due

T0 = datetime(2026, 11, 30, 12, 0, 0, tzinfo=timezone.utc)
EVERY_2S = interval(timedelta(seconds=2))


def s(seconds):
    return T0 + timedelta(seconds=seconds)


def test_interval_due_times_count_on_from_the_base_whoever_computes_them():
    assert due.next_after(EVERY_2S, s(0), s(0)) == s(2)
    assert due.next_after(EVERY_2S, s(0), s(5.9)) == s(6)
    assert due.next_after(EVERY_2S, s(0), s(6)) == s(8), "strictly after"
    assert due.between(EVERY_2S, s(0), s(7)) == ([s(2), s(4), s(6)], 3)


def test_crontab_due_times_are_the_exact_minute_in_the_configured_zone():
    app = Celery(set_as_current=False)
    app.conf.timezone = "Europe/Berlin"
    cron = crontab(minute="30", hour="3", app=app)
    first = due.next_after(cron, s(0), s(0))
    assert first == datetime(2026, 12, 1, 2, 30, tzinfo=timezone.utc), "03:30 in Berlin, not 03:29:59"
    assert due.next_after(cron, s(0), first) == first + timedelta(days=1)


def test_a_live_beat_sends_each_run_on_time():
    out = due.plan(EVERY_2S, "skip", base=s(0), now=s(2.01), started_at=s(-100), grace_s=10)
    assert (out.send, out.skip) == ([s(2)], None)


@pytest.mark.parametrize("policy, sent", [("skip", []), ("once", [s(8)]), ("all", [s(2), s(4), s(6), s(8)])])
def test_runs_missed_while_no_beat_ran_follow_the_policy(policy, sent):
    """Beat stopped after the run due at 0, started at 9 s: due times 2, 4, 6, 8 were missed."""
    out = due.plan(EVERY_2S, policy, base=s(0), now=s(9 + 11), started_at=s(9), grace_s=10)
    on_time = [d for d in out.send if d >= s(9)]
    assert [d for d in out.send if d < s(9)] == sent and on_time == [s(10), s(12), s(14), s(16), s(18), s(20)]
    assert (out.skip == s(8)) is (policy == "skip")


def test_skip_waits_out_the_grace_so_a_beat_that_was_up_still_sends_the_run():
    out = due.plan(EVERY_2S, "skip", base=s(0), now=s(2.5), started_at=s(2.2), grace_s=10)
    assert (out.send, out.skip) == ([], None), "due 0.5 s before this Beat started: another may be sending it"


def test_runs_a_live_beat_could_not_claim_for_longer_than_the_grace_count_as_missed():
    """The database was away for a minute: once sends one run for all of them, then goes on on time."""
    out = due.plan(EVERY_2S, "once", base=s(0), now=s(60), started_at=s(-100), grace_s=10)
    assert out.send == [s(48)] + [s(50 + 2 * k) for k in range(6)]


def test_all_sends_at_most_the_newest_hundred_missed_runs():
    out = due.plan(EVERY_2S, "all", base=s(0), now=s(1000), started_at=s(999), grace_s=10)
    assert len(out.send) == due.CATCH_UP_MAX and out.send[-1] == s(1000) and out.dropped == 400
