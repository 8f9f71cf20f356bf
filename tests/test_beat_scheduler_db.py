"""The scheduler's own logic against real databases: last good schedule on DB errors, crontab timezone."""
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine

from models import Schedule, db
from panel.beat.scheduler import DatabaseScheduler
from panel.runlog import recorder
from tests.helpers import free_port


def _scheduler(app):
    return DatabaseScheduler(app.extensions["celery"], lazy=False)


def test_a_database_error_keeps_the_last_good_schedule_and_is_retried(make_app):
    app = make_app()
    with app.app_context():
        db.session.add(Schedule(name="keep me", task="tests.add", args=[1, 1], interval_seconds=30))
        db.session.commit()
    sched = _scheduler(app)
    try:
        assert set(sched.schedule) == {"keep me"}
        good = sched._engine
        sched._engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nope",
                                      connect_args={"connect_timeout": 2})
        sched._marker_checked = 0
        assert set(sched.schedule) == {"keep me"}, "a DB error dropped the schedule"
        assert sched._reload() is False
        sched._engine = good
        with app.app_context():
            db.session.add(Schedule(name="new one", task="tests.add", args=[2, 2], interval_seconds=30))
            db.session.commit()
        sched._marker_checked = 0
        assert set(sched.schedule) == {"keep me", "new one"}, "the scheduler did not recover"
    finally:
        sched.close()


def test_crontab_rows_use_the_configured_timezone(make_app):
    app = make_app(CELERY_TIMEZONE="Asia/Tokyo")
    with app.app_context():
        db.session.add(Schedule(name="tokyo", task="tests.add", args=[1, 1], crontab="0 9 * * *"))
        db.session.commit()
    sched = _scheduler(app)
    try:
        entry = sched.schedule["tokyo"]
        assert entry.schedule.tz == ZoneInfo("Asia/Tokyo")
        assert entry.schedule.hour == {9} and entry.options["headers"][recorder.SCHEDULE_HEADER]
    finally:
        sched.close()
