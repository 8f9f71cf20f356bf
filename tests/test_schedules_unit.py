"""Pure logic: validation of scheduled-task input and crontab parsing."""
import pytest

from panel.beat.schedules import clean, parse_crontab
from panel.errors import ValidationError

REGISTERED = {"crawl_url", "tests.add"}
GOOD = {"name": "n", "task": "crawl_url", "args": ["http://x"], "interval_seconds": 60}


def test_clean_accepts_an_interval_task_and_json_strings():
    out = clean(dict(GOOD, args='["http://x"]', kwargs='{"timeout": 3}'), REGISTERED)
    assert out["args"] == ["http://x"] and out["kwargs"] == {"timeout": 3} and out["interval_seconds"] == 60


def test_clean_accepts_a_crontab_and_normalises_spaces():
    data = dict(GOOD, interval_seconds=None, crontab="*/5  *  * * 1-5")
    assert clean(data, REGISTERED)["crontab"] == "*/5 * * * 1-5"


@pytest.mark.parametrize("change, field", [
    ({"name": ""}, "name"),
    ({"task": "nope"}, "task"),
    ({"args": "[1,"}, "args"),
    ({"args": {"a": 1}}, "args"),
    ({"kwargs": [1]}, "kwargs"),
    ({"interval_seconds": 0}, "interval_seconds"),
    ({"interval_seconds": -5}, "interval_seconds"),
    ({"interval_seconds": "abc"}, "interval_seconds"),
    ({"interval_seconds": 1.5}, "interval_seconds"),
    ({"interval_seconds": True}, "interval_seconds"),
    ({"interval_seconds": None}, "interval_seconds"),
    ({"interval_seconds": None, "crontab": "* * *"}, "crontab"),
    ({"interval_seconds": None, "crontab": "61 * * * *"}, "crontab"),
    ({"crontab": "* * * * *"}, "interval_seconds"),
    ({"enabled": "yes"}, "enabled"),
])
def test_clean_names_the_failing_field(change, field):
    with pytest.raises(ValidationError) as err:
        clean(dict(GOOD, **change), REGISTERED)
    assert err.value.field == field


def test_parse_crontab_reads_five_fields():
    cron = parse_crontab("30 4 * * 1")
    assert cron.minute == {30} and cron.hour == {4} and cron.day_of_week == {1}
