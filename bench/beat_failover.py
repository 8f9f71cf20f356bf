"""The time from a sending Beat's death (SIGKILL) to the next due run sent by the one left.

Beside each other in one run, on the same private Redis:
- claims: two real `celery beat` processes of the panel (panel/beat/scheduler.py), each due run claimed in
  the database; one killed, the next due run is sent by the other.
- lock: the Redis lock main used before (SET NX PX with the 15 s TTL, renewed by its holder, the others
  trying every TTL/3 s), in two processes that send the same schedule; the holder killed, the other sends
  once the lock has expired.
The schedule runs every second; a run that is due while nobody sends counts against the method.
"""
import os
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from datetime import timezone

from bench.common import ROOT, private_stack
from models import BeatClaim, Schedule, db
from panel.broker import connection
from panel.host.processes import BEAT

TRIALS = 3
INTERVAL_S = 1
LOCK_TTL_S = 15.0  # BEAT_LOCK_TTL_S on main before the claims
WAIT_S = 60

# The old protocol, as panel/beat/lock.py had it: take with NX and a TTL, renew only while the token is ours.
LOCK_BEAT = textwrap.dedent("""
    import os, sys, time, uuid, redis
    url, key, ttl_ms, interval, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
    renew = ("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) "
             "else return 0 end")
    client, token, held = redis.Redis.from_url(url), f"{os.getpid()}:{uuid.uuid4().hex[:8]}", False
    next_due = (int(time.time() / interval) + 1) * interval
    while True:
        held = (bool(held and client.eval(renew, 1, key, token, ttl_ms))
                or bool(client.set(key, token, nx=True, px=ttl_ms)))
        now = time.time()
        if held and now >= next_due:
            client.rpush(out, f"{os.getpid()} {now}")
            next_due = (int(now / interval) + 1) * interval
        time.sleep(max(0.0, min(next_due - time.time(), interval)) if held else min(interval, ttl_ms / 3000))
""")


def claim_trial(app, schedule_id):
    """Seconds from SIGKILL of the Beat that sent last to the next run the other one sends."""
    supervisor = app.extensions["supervisor"]
    supervisor.start((BEAT,))
    with open(os.devnull, "wb") as quiet:
        second = subprocess.Popen([str(ROOT / "start_celery_beat.sh"), "--foreground"], cwd=str(ROOT),
                                  env=supervisor.child_env(), stdout=quiet, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        time.sleep(4)  # both loaded and claiming
        last = latest_claim(app, schedule_id)
        os.kill(int(last.claimed_by.split(":")[1]), signal.SIGKILL)  # claimed_by is host:pid:token
        killed = time.time()
        return waited(killed, lambda: next_claim(app, schedule_id, killed, last.claimed_by))
    finally:
        if second.poll() is None:
            second.terminate()
            second.wait(timeout=15)
        supervisor.stop((BEAT,))


def latest_claim(app, schedule_id):
    with app.app_context():
        try:
            return db.session.query(BeatClaim).filter_by(schedule_id=schedule_id, outcome="sent").order_by(
                BeatClaim.sent_at.desc()).first()
        finally:
            db.session.remove()


def next_claim(app, schedule_id, killed, victim):
    after = latest_claim(app, schedule_id)
    stamp = after.sent_at.replace(tzinfo=timezone.utc).timestamp()
    return stamp if stamp > killed and after.claimed_by != victim else None


def lock_trial(redis, n):
    """The same measure for the lock: two processes, the holder killed, the other waits out the TTL."""
    key, out = f"bench:beat-lock:{n}", f"bench:sent:{n}"
    argv = [sys.executable, "-c", LOCK_BEAT, redis.url, key, str(int(LOCK_TTL_S * 1000)), str(INTERVAL_S), out]
    procs = [subprocess.Popen(argv, start_new_session=True) for _ in range(2)]
    client = connection.redis_client(redis.url, 5)
    try:
        time.sleep(4)
        holder = int(client.get(key).decode().split(":")[0])
        os.kill(holder, signal.SIGKILL)
        killed = time.time()
        return waited(killed, lambda: next((float(stamp) for pid, stamp in
                                            (item.decode().split() for item in client.lrange(out, 0, -1))
                                            if int(pid) != holder and float(stamp) > killed), None))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=15)


def waited(killed, sent_at):
    """Seconds from the kill to the first send `sent_at()` reports (bounded)."""
    deadline = killed + WAIT_S
    while time.time() < deadline:
        stamp = sent_at()
        if stamp:
            return stamp - killed
        time.sleep(0.05)
    raise RuntimeError("nobody sent after the kill")


def main():
    with private_stack() as (app, redis):
        with app.app_context():
            schedule = Schedule(name="every second", task="bench.tick", args=["failover"], interval_seconds=INTERVAL_S)
            db.session.add(schedule)
            db.session.commit()
            schedule_id = schedule.id
            db.session.remove()
        claims = [claim_trial(app, schedule_id) for _ in range(TRIALS)]
        locks = [lock_trial(redis, n) for n in range(TRIALS)]
    claim_s, lock_s = statistics.median(claims), statistics.median(locks)
    print(f"schedule every {INTERVAL_S} s; {TRIALS} trials each; a Beat killed with SIGKILL")
    print(f"{'claims in the database (now)':<44} median {claim_s:6.2f} s   all {[round(v, 2) for v in claims]}")
    print(f"{'Redis lock, TTL 15 s (before)':<44} median {lock_s:6.2f} s   all {[round(v, 2) for v in locks]}")
    print(f"death to the next due run sent: {lock_s / claim_s:.1f}x sooner with claims "
          f"(target: within one interval; the lock waits out its TTL)")


if __name__ == "__main__":
    main()
