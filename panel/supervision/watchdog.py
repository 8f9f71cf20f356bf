"""The watchdog: a worker or Beat that dies without being stopped through the panel is started again.

Supervisor's model: RUNNING; a crash -> STARTING; a start that fails (or a process that dies again
within STABLE_S of its start) counts as a quick failure -> BACKOFF with a growing delay -> FATAL
after MAX_FAILURES, where it waits for a person. Its switches and states live in the `watchdogs`
table so every panel process (gunicorn workers too) shows the same thing; one process acts.
"""
import logging
from datetime import timedelta

from sqlalchemy import select

from models import RUNNING, Run, Watchdog, db, iso, utcnow
from panel.database import reader
from panel.errors import BrokerDown, ControlBusy
from panel.health import alerts
from panel.host import oscontrol, states
from panel.host.processes import KINDS, WORKER
from panel.host.states import State
from panel.runlog import outcomes
from panel.supervision import quarantine

log = logging.getLogger("panel.watchdog")
ACTOR = "watchdog"


def rows():
    """The watchdog rows for the worker and Beat, created (off) on first look."""
    found = {row.program: row for row in db.session.scalars(select(Watchdog))}
    for kind in KINDS:
        if kind not in found:
            found[kind] = Watchdog(program=kind, enabled=False, desired="running", state=State.STOPPED.value,
                                   failures=0, reason="", pids=[], changed_at=utcnow())
            db.session.add(found[kind])
    return found


def set_enabled(kind, enabled, reason):
    """Switch the watchdog for one program; on means "keep it running" (and clears FATAL), off forgets its tries."""
    row = rows()[kind]
    row.enabled = enabled
    if enabled:
        row.desired, row.failures, row.retry_at = "running", 0, None
    if row.state in (State.FATAL.value, State.BACKOFF.value, State.STARTING.value) or (
            not enabled and row.state == State.EXITED.value):
        states.change(row, State.STOPPED, reason, kind=f"watchdog {kind}")
        row.failures, row.retry_at = (row.failures if enabled else 0), None
    row.reason, row.changed_at = reason, utcnow()
    db.session.commit()
    return row


def apply_configured(cfg):
    """The WATCHDOG setting ("worker", "beat" or both) switches those on at start-up."""
    wanted = [k.strip() for k in (cfg.get("WATCHDOG") or "").split(",") if k.strip()]
    for kind in wanted:
        if kind in KINDS:
            set_enabled(kind, True, "switched on by the WATCHDOG setting")
        else:
            log.warning("WATCHDOG names %r: only %s can be watched", kind, " and ".join(KINDS))


def note_intent(kind, desired, pids=None):
    """A start or stop through the panel: the watchdog follows the person's intent (and, from Supervisor, the PIDs it
    left, so that the new PID after a restart is not taken for a crash)."""
    row = rows()[kind]
    row.desired, row.changed_at = desired, utcnow()
    if pids is not None:
        row.pids = list(pids)
    if desired == "running":
        row.failures, row.retry_at = 0, None
    db.session.commit()


def view():
    """Every program's watchdog for status pages: a deferred read that never takes SQLite's write lock."""
    table = Watchdog.__table__
    with reader(db.engine).connect() as conn:
        found = {row.program: as_dict(row) for row in conn.execute(select(table))}
    for kind in KINDS:
        found.setdefault(kind, {"program": kind, "enabled": False, "desired": "running", "state": State.STOPPED.value,
                                "failures": 0, "retry_at": None, "reason": "", "pids": [], "changed_at": None})
    return found


def as_dict(row):
    return {"program": row.program, "enabled": row.enabled, "desired": row.desired, "state": row.state,
            "failures": row.failures, "retry_at": iso(row.retry_at),
            "reason": row.reason, "pids": row.pids or [],
            "changed_at": iso(row.changed_at)}


def _exit_status(pids):
    """How the last seen process ended, when this panel process reaped it (None otherwise)."""
    return next((s for s in map(oscontrol.exit_status, pids or []) if s is not None), None)


def _settled(dog, refs):
    """Nothing to do: the row says what the table says (watched: running, with no failure left to forgive)."""
    pids = sorted(r.pid for r in refs)
    running = dog["state"] == State.RUNNING.value
    if not dog["enabled"]:
        return dog["pids"] == pids and running == bool(refs)
    return bool(refs) and running and dog["pids"] == pids and not dog["failures"]


class Watchdogs:
    """The loop's brain: one tick looks at the process table and acts for each enabled program."""

    def __init__(self, app):
        self.app = app
        self.cfg = app.config
        self.supervisor = app.extensions["supervisor"]
        self.started_at = {}  # kind -> when the watchdog last saw it come up (stability clock)

    def tick(self, now=None):
        """One look; the write transaction is opened only when something is to change (SQLite's lock)."""
        now = now or utcnow()
        table = self.supervisor.host.scan()
        if all(_settled(dog, table[kind]) for kind, dog in view().items()):
            return
        for kind, row in rows().items():
            (self._tick_one if row.enabled else self._observe)(kind, row, table[kind], now)
        db.session.commit()

    def _set(self, row, state, reason, now):
        """The watchdog's row moves through the same door as every program state."""
        states.change(row, state, reason, kind=f"watchdog {row.program}")
        row.changed_at = now

    def _tick_one(self, kind, row, refs, now):
        if refs:
            self._running(kind, row, refs, now)
            return
        if row.desired == "stopped":
            self._set(row, State.STOPPED, "stopped through the panel", now)
            return
        if row.state == State.FATAL.value or (row.retry_at is not None and now < row.retry_at):
            return
        db.session.commit()  # hold no database transaction while waiting for the lock
        try:  # decide again under the control lock: a stop through the panel may be under way
            with self.supervisor.control_lock(wait_s=self.cfg["WATCHDOG_LOCK_WAIT_S"]):
                db.session.refresh(row)
                if self.supervisor.host.scan()[kind] or not row.enabled or row.desired == "stopped":
                    return
                status = _exit_status(row.pids)
                lost = self._fail_runs_of_dead_worker(oscontrol.describe_exit(status)) if kind == WORKER else 0
                if row.state == State.RUNNING.value:
                    self._crashed(kind, row, now, lost, status)
                else:
                    self._restart(kind, row, now)
        except ControlBusy:
            log.info("watchdog %s: a control action is in progress; looking again next tick", kind)

    def _observe(self, kind, row, refs, now):
        """Watchdog off: the row still follows the table, and a program that died unasked is recorded and alerted."""
        if refs:
            self._running(kind, row, refs, now)
        elif row.pids or row.state == State.RUNNING.value:
            db.session.commit()  # hold no database transaction while waiting for the lock
            try:  # a stop through the panel may be under way: it says so itself
                with self.supervisor.control_lock(wait_s=self.cfg["WATCHDOG_LOCK_WAIT_S"]):
                    db.session.refresh(row)
                    if self.supervisor.host.scan()[kind] or row.enabled:
                        return
                    if row.desired == "stopped":
                        self._set(row, State.STOPPED, "stopped through the panel", now)
                    else:
                        status = _exit_status(row.pids)
                        lost = self._fail_runs_of_dead_worker(oscontrol.describe_exit(status)) if kind == WORKER else 0
                        self._died(kind, row, now, lost, status, "nothing restarts it: the watchdog is off")
                        self._quarantine(kind, status)
                    row.pids = []
                    db.session.commit()
            except ControlBusy:
                log.info("watchdog %s: a control action is in progress; looking again next tick", kind)

    def _running(self, kind, row, refs, now):
        pids = sorted(r.pid for r in refs)
        if row.desired == "stopped":  # started by hand since the last stop through the panel: it is wanted
            self._wanted_again(row)
        if row.state != State.RUNNING.value or row.pids != pids:
            self.started_at[kind] = now
            self._set(row, State.RUNNING, "running" if row.enabled else "running (watchdog off)", now)
            row.pids = pids
        if row.failures and now - self.started_at.get(kind, now) >= timedelta(seconds=self.cfg["WATCHDOG_STABLE_S"]):
            row.failures, row.retry_at = 0, None  # up long enough: earlier failures are forgiven

    def _wanted_again(self, row):
        """Seen running after a stop through the panel: someone started it, so a death is a crash again."""
        try:
            with self.supervisor.control_lock(wait_s=0):  # never while a stop is under way
                row.desired = "running"
                db.session.commit()
        except ControlBusy:
            pass

    def _died(self, kind, row, now, lost, status, then):
        """A program gone without a stop through the panel: a history row with its exit status, an alert, EXITED."""
        how = oscontrol.describe_exit(status)
        message = (f"{kind} (PID {', '.join(map(str, row.pids or [])) or '?'}) "
                   f"stopped without a stop through the panel: {how}")
        if lost:
            message += f"; {lost} running run(s) marked failed"
        log.warning("watchdog: %s; %s", message, then)
        self.supervisor.on_event(program=kind, action="crash", outcome="error", pids=row.pids or [],
                                 message=f"{message}; {then}", cause="unexpected exit", actor=ACTOR, exit_status=status)
        self._set(row, State.EXITED, how, now)
        db.session.commit()
        alerts.process_stopped(self.cfg, kind, row.pids or [], status, "unexpected exit")
        return how

    def _crashed(self, kind, row, now, lost, status):
        """Record the crash with its exit status and the runs it took with it, alert, then restart."""
        quick = (now - self.started_at.get(kind, now - timedelta(days=1))
                 < timedelta(seconds=self.cfg["WATCHDOG_STABLE_S"]))
        if quick:
            row.failures += 1
        how = self._died(kind, row, now, lost, status, "the watchdog starts it again")
        if self._quarantine(kind, status) is not None:  # its cause is out of the queue: a fresh start, not a FATAL step
            row.failures = 0
            self._restart(kind, row, now)
        elif row.failures >= self.cfg["WATCHDOG_MAX_FAILURES"]:
            self._fatal(kind, row, now,
                        f"died {row.failures} times within {self.cfg['WATCHDOG_STABLE_S']:g} s of starting")
        elif quick:  # it came up and fell over again: wait before the next try
            self._backoff(kind, row, now, f"died within {self.cfg['WATCHDOG_STABLE_S']:g} s of starting ({how})")
        else:
            self._restart(kind, row, now)

    def _quarantine(self, kind, status=None):
        """After a worker's death: the message it died handling, out of its queue if it is a repeat (else None)."""
        if kind != WORKER:
            return None
        try:
            return quarantine.note_death(self.cfg, self.supervisor.celery,
                                          self.supervisor.log_text(kind, quarantine.LOG_TAIL_BYTES), status)
        except BrokerDown as exc:
            log.warning("watchdog: could not look for the message the worker died on: %s", exc)
            return None

    def _fail_runs_of_dead_worker(self, how):
        """No worker process: its running runs are lost now, before a new worker takes the name."""
        ids = db.session.scalars(select(Run.celery_task_id).where(
            Run.status == RUNNING, Run.worker == self.supervisor.nodename)).all()
        if not ids:
            return 0
        return outcomes.end(ids, outcomes.lost(self.supervisor.nodename, f"died ({how})")).runs

    def _restart(self, kind, row, now):
        self._set(row, State.STARTING, "starting again" if row.failures == 0 else f"attempt {row.failures + 1}", now)
        db.session.commit()  # no transaction held while the start waits for the process
        try:
            result = self.supervisor.start((kind,), actor=ACTOR, cause="watchdog")[kind]
            ok, reason = result.ok, result.message
        except (ControlBusy, BrokerDown) as exc:
            ok, reason = False, str(exc)
        if ok:
            self.started_at[kind] = utcnow()
            row.pids = result.pids
            self._set(row, State.RUNNING, f"started again by the watchdog (PID {', '.join(map(str, result.pids))})",
                      utcnow())
            db.session.commit()  # the card says RUNNING now, whatever else this tick meets
            return
        row.failures += 1
        if self._quarantine(kind) is not None:  # it died on a message now out of the queue: try again at once
            row.failures, row.retry_at = 0, utcnow()
            self._set(row, State.BACKOFF, f"start failed ({reason}); the message it died on was quarantined", now)
        elif row.failures >= self.cfg["WATCHDOG_MAX_FAILURES"]:
            self._fatal(kind, row, now, f"could not start it {row.failures} times: {reason}")
        else:
            self._backoff(kind, row, now, f"start failed ({reason})")

    def _backoff(self, kind, row, now, why):
        """Wait longer after each quick failure: BACKOFF_S, twice that, ... up to BACKOFF_MAX_S."""
        delay = min(self.cfg["WATCHDOG_BACKOFF_S"] * 2 ** max(row.failures - 1, 0), self.cfg["WATCHDOG_BACKOFF_MAX_S"])
        row.retry_at = utcnow() + timedelta(seconds=delay)
        self._set(row, State.BACKOFF, f"{why}; next attempt in {delay:g} s", now)
        self.supervisor.on_event(program=kind, action="backoff", outcome="error", pids=[], message=row.reason,
                                 cause="watchdog", actor=ACTOR)

    def _fatal(self, kind, row, now, reason):
        self._set(row, State.FATAL, reason, now)
        row.retry_at = None
        self.supervisor.on_event(program=kind, action="fatal", outcome="error", pids=[], message=reason,
                                 cause="watchdog", actor=ACTOR)
        db.session.commit()
        alerts.process_fatal(self.cfg, kind, reason, row.failures)
