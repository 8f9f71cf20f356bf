"""Beat's claims on due runs, in the panel's database: the insert that decides which Beat sends a run.

No lock and no TTL: every Beat tries the insert for each due run; the unique (schedule, due time) lets one
land. A claim whose send failed is deleted, so the run is tried again; one left unsent by a Beat that died
mid-send is taken over after STALE_S.
"""
from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from models import BeatClaim, Schedule, utcnow
from panel.database import reader

claims_t, tasks_t = BeatClaim.__table__, Schedule.__table__
STALE_S = 30.0   # a send takes a second at most (publish.SEND_RETRY); an unsent claim this old lost its Beat
KEEP_DAYS = 7    # claims older than this go, except each schedule's newest (its due times go on from it)


def naive(aware):
    return aware.replace(tzinfo=None)


def bases(engine):
    """Each schedule's newest claimed due time (naive UTC), by schedule id."""
    with reader(engine).connect() as conn:
        return dict(conn.execute(select(claims_t.c.schedule_id, func.max(claims_t.c.due_at))
                                 .group_by(claims_t.c.schedule_id)).all())


def take(engine, schedule_id, due, me, outcome="claimed"):
    """True when this Beat's insert landed (it sends the run); False when another Beat's did."""
    try:
        with engine.begin() as conn:
            conn.execute(claims_t.insert().values(schedule_id=schedule_id, due_at=naive(due), outcome=outcome,
                                                  claimed_by=me[:200], claimed_at=utcnow()))
        return True
    except IntegrityError:
        return False


def sent(engine, schedule_id, due, celery_task_id):
    with engine.begin() as conn:
        conn.execute(update(claims_t).where(claims_t.c.schedule_id == schedule_id, claims_t.c.due_at == naive(due))
                     .values(outcome="sent", sent_at=utcnow(), celery_task_id=celery_task_id))


def release(engine, schedule_id, due):
    """The send failed: the run is owed again, to whichever Beat claims it next."""
    with engine.begin() as conn:
        conn.execute(delete(claims_t).where(claims_t.c.schedule_id == schedule_id, claims_t.c.due_at == naive(due),
                                            claims_t.c.outcome == "claimed"))


def take_over_stale(engine, me):
    """Claims left unsent by a Beat that died between its claim and its send, now this Beat's to send."""
    cutoff = utcnow() - timedelta(seconds=STALE_S)
    with reader(engine).connect() as conn:
        stale = conn.execute(select(claims_t.c.id, claims_t.c.schedule_id, claims_t.c.due_at, claims_t.c.claimed_at)
                             .where(claims_t.c.sent_at.is_(None), claims_t.c.outcome == "claimed",
                                    claims_t.c.claimed_at < cutoff)).all()
    taken = []
    for row in stale:
        with engine.begin() as conn:  # only one Beat's update matches the old claim time
            moved = conn.execute(update(claims_t).where(claims_t.c.id == row.id,
                                                        claims_t.c.claimed_at == row.claimed_at)
                                 .values(claimed_by=me[:200], claimed_at=utcnow())).rowcount
        if moved:
            taken.append((row.schedule_id, row.due_at))
    return taken


def last_dispatch(conn):
    """What a Beat sent last, and when: {"at", "task"} or None (the health view's "last Beat dispatch")."""
    row = conn.execute(select(claims_t.c.sent_at, tasks_t.c.name).join(tasks_t, tasks_t.c.id == claims_t.c.schedule_id)
                       .where(claims_t.c.sent_at.is_not(None)).order_by(claims_t.c.sent_at.desc()).limit(1)).first()
    return {"at": row.sent_at, "task": row.name} if row else None


def prune(engine, keep_days=KEEP_DAYS):
    """Old claims go; each schedule's newest stays, since its due times count on from it."""
    newest = select(func.max(claims_t.c.id)).group_by(claims_t.c.schedule_id)
    with engine.begin() as conn:
        return conn.execute(delete(claims_t).where(claims_t.c.claimed_at < utcnow() - timedelta(days=keep_days),
                                                   claims_t.c.id.not_in(newest))).rowcount
