"""Pure logic: what a schedule request's model accepts and refuses, and crontab parsing."""
import pytest

from panel.beat.schedules import parse_crontab
from panel.errors import ValidationError
from panel.web.contract import parse
from panel.web.schemas.schedules import ScheduleIn, SchedulePatch

GOOD = {"name": "n", "task": "crawl_url", "args": ["http://x"], "interval_seconds": 60}


def test_an_interval_schedule_is_read_as_given_with_defaults():
    out = parse(ScheduleIn, dict(GOOD, kwargs={"timeout": 3})).changes()
    assert out == {"name": "n", "task": "crawl_url", "args": ["http://x"], "kwargs": {"timeout": 3},
                   "interval_seconds": 60, "crontab": None, "enabled": True, "catch_up": "once"}


def test_a_crontab_schedule_normalises_spaces_and_clears_the_interval():
    out = parse(ScheduleIn, dict(GOOD, interval_seconds=None, crontab="*/5  *  * * 1-5")).changes()
    assert out["crontab"] == "*/5 * * * 1-5" and out["interval_seconds"] is None


def test_an_edit_changes_only_what_it_names_and_a_crontab_replaces_the_interval():
    assert parse(SchedulePatch, {"name": " renamed "}).changes() == {"name": "renamed"}
    changes = parse(SchedulePatch, {"crontab": "0 3 * * *"}).changes()
    assert changes == {"crontab": "0 3 * * *", "interval_seconds": None}
    assert parse(SchedulePatch, {"interval_seconds": None}).changes() == {}


@pytest.mark.parametrize("change, field", [
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"args": "[1]"}, "args"),  # a JSON array, not text holding one: the form parses before it sends
    ({"args": {"a": 1}}, "args"),
    ({"kwargs": [1]}, "kwargs"),
    ({"interval_seconds": 0}, "interval_seconds"),
    ({"interval_seconds": -5}, "interval_seconds"),
    ({"interval_seconds": "60"}, "interval_seconds"),
    ({"interval_seconds": 1.5}, "interval_seconds"),
    ({"interval_seconds": True}, "interval_seconds"),
    ({"interval_seconds": None}, "interval_seconds"),
    ({"interval_seconds": None, "crontab": "* * *"}, "crontab"),
    ({"interval_seconds": None, "crontab": "61 * * * *"}, "crontab"),
    ({"interval_seconds": None, "crontab": "0 0 31 2 *"}, "crontab"),
    ({"crontab": "* * * * *"}, "interval_seconds"),
    ({"enabled": "yes"}, "enabled"),
    ({"colour": "red"}, "colour"),
    ({"catch_up": "twice"}, "catch_up"),
])
def test_a_bad_schedule_names_the_failing_field(change, field):
    with pytest.raises(ValidationError) as err:
        parse(ScheduleIn, dict(GOOD, **change))
    assert err.value.field == field


@pytest.mark.parametrize("change, field", [({"name": None}, "name"), ({"enabled": None}, "enabled"),
                                           ({"catch_up": None}, "catch_up"),
                                           ({"interval_seconds": 60, "crontab": "* * * * *"}, "interval_seconds")])
def test_an_edit_refuses_nulls_and_both_kinds_of_schedule(change, field):
    with pytest.raises(ValidationError) as err:
        parse(SchedulePatch, change)
    assert err.value.field == field


def test_parse_crontab_reads_five_fields():
    cron = parse_crontab("30 4 * * 1")
    assert cron.minute == {30} and cron.hour == {4} and cron.day_of_week == {1}


@pytest.mark.parametrize("zone, hour", [("UTC", 3), ("Europe/Paris", 2), ("Asia/Tokyo", 18)])
def test_next_run_of_a_crontab_is_computed_in_the_configured_zone_to_the_exact_second(make_app, zone, hour):
    """A 03:30 crontab in CELERY_TIMEZONE shows its due time in UTC, at :30:00, without Beat having run."""
    from models import Schedule, db
    from panel.beat import schedules
    app = make_app(CELERY_TIMEZONE=zone)
    with app.app_context():
        task = Schedule(name="n", task="crawl_url", crontab="30 3 * * *", enabled=True, args=[], kwargs={})
        db.session.add(task)
        db.session.commit()
        due = schedules.next_run(task)
        assert (due.hour, due.minute, due.second, due.microsecond) == (hour, 30, 0, 0)
