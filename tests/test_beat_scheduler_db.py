"""Beat's database scheduler: a real Beat whose database goes away, and crontab timezones."""
from zoneinfo import ZoneInfo

from models import Run, Schedule, db
from panel.beat.scheduler import DatabaseScheduler
from panel.broker import queues
from panel.host.processes import BEAT
from tests.helpers import TcpProxy, build_app, stop_everything, wait_for


def _scheduler(app):
    return DatabaseScheduler(app.extensions["celery"], lazy=False)


def test_a_real_beat_whose_database_goes_away_sends_nothing_it_cannot_claim_and_owes_the_runs(redis_server,
                                                                                              pg_server, tmp_path):
    """PostgreSQL behind a proxy we cut: no claim, no send (never twice); once back, what fell due goes out."""
    proxy = TcpProxy(5432)
    url = pg_server.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    app = build_app(tmp_path / "instance", url, redis_server.url)
    celery = app.extensions["celery"]
    try:
        with app.app_context():
            db.session.add(Schedule(name="keep me", task="tests.add", args=[1, 1], interval_seconds=1))
            db.session.commit()
            db.session.remove()
        assert app.extensions["supervisor"].start((BEAT,))[BEAT].ok
        log = app.extensions["supervisor"].log_path(BEAT)
        wait_for(lambda: waiting(celery) >= 1, 15, "Beat to send the schedule")
        offset = log.stat().st_size
        proxy.cut()
        refusals = lambda: log.read_text(errors="replace")[offset:].count("cannot claim due runs")  # noqa: E731
        wait_for(lambda: refusals() >= 1, 20, "Beat to meet the dead database")
        sent = waiting(celery)
        wait_for(lambda: refusals() >= 4, 20, "three more ticks without its database")
        assert waiting(celery) <= sent + 1, "sent without a claim"  # one send may have been under way at the cut
        proxy.restore()
        wait_for(lambda: waiting(celery) > sent + 1, 30, "the runs that fell due meanwhile to go out")
        with app.app_context():
            db.session.add(Schedule(name="new one", task="tests.add", args=[2, 2], interval_seconds=1))
            db.session.commit()
            new_id = db.session.query(Schedule.id).filter_by(name="new one").scalar()
            db.session.remove()
        wait_for(lambda: runs_of(app, new_id), 30, "Beat to see the edit made after the database came back")
    finally:
        stop_everything(app)
        proxy.cut()
        with celery.connection_for_write() as conn:
            conn.default_channel.queue_purge("celery")


def waiting(celery):
    return queues.sizes(celery, ["celery"])["celery"]


def runs_of(app, schedule_id):
    with app.app_context():
        try:
            return db.session.query(Run).filter_by(scheduled_task_id=schedule_id).count()
        finally:
            db.session.remove()


def test_crontab_rows_use_the_configured_timezone(make_app):
    app = make_app(CELERY_TIMEZONE="Asia/Tokyo")
    with app.app_context():
        db.session.add(Schedule(name="tokyo", task="tests.add", args=[1, 1], crontab="0 9 * * *"))
        db.session.commit()
    sched = _scheduler(app)
    try:
        entry = sched.schedule["tokyo"]
        assert entry.schedule.tz == ZoneInfo("Asia/Tokyo")
        assert entry.schedule.hour == {9}
        with app.app_context():
            next_run = db.session.query(Schedule.next_run_at).filter_by(name="tokyo").scalar()
        assert (next_run.hour, next_run.minute, next_run.second) == (0, 0, 0), "09:00 in Tokyo, in UTC, exactly"
    finally:
        sched.close()
