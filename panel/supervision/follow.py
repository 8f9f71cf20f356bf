"""Supervisor keeps the worker and Beat (this host's under PROCESS_MANAGER=supervisor, every host's of the pane), and
the panel follows its states into the restart history; the panel's watchdog stands down for them. A PID that
changed or went without an action through the panel is a death: a row saying how it ended (supervisord's own log),
the runs it held marked lost, the message it died on counted for the quarantine, an alert. Supervisor's retries
(BACKOFF) and its giving up (FATAL) are rows too. What was last seen is kept in the database (this host's in the
watchdogs table, the pane's in followed_programs), so a death while the panel was away is recorded when it is back."""
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from models import RUNNING, FollowedProgram, Run, db, utcnow
from panel.cluster import workers
from panel.database import reader
from panel.errors import BrokerDown, ControlBusy, PanelError
from panel.fleet.hosts import Fleet
from panel.health import alerts
from panel.host import oscontrol, states
from panel.host.processes import WORKER
from panel.runlog import outcomes
from panel.supervision import crashlog, history, quarantine, watchdog

log = logging.getLogger("panel.follow")
ACTOR = "supervisord"


def pane(app):
    """The app's one Fleet (its threads with it), its actions written to the history and told to the follower."""
    if "fleet" not in app.extensions:
        app.extensions["fleet"] = Fleet.from_config(app.config, on_event=history.recorder_for(app),
                                                    on_intent=lambda host, kind, desired, pids=None: note_intent(
                                                        app, host, kind, desired, pids))
    return app.extensions["fleet"]


def note_intent(app, host, kind, desired, pids=None):
    """An action through the panel on a host of the pane: what the follower is to expect (failures only logged)."""
    try:
        with app.app_context():
            row = db.session.get(FollowedProgram, (host, kind))
            if row is None:
                row = FollowedProgram(host=host, program=kind, state="UNKNOWN", pids=[], reason="")
                db.session.add(row)
            row.desired, row.changed_at = desired, utcnow()
            if pids is not None:
                row.pids = list(pids)
            db.session.commit()
    except Exception:  # the action goes on; at worst its PID change is recorded as a crash
        log.exception("could not note that %s on %s should be %s", kind, host, desired)


@dataclass(frozen=True)
class Seat:
    """One program under one supervisord, as followed."""

    host: str | None  # None: this panel's own host
    kind: str
    program: str
    client: object  # its Supervisord
    nodes: tuple  # Celery node names whose running runs end with its death


def _pids(info):
    return [info["pid"]] if info and info["pid"] else []


def _settled(row, info):
    """Nothing new: the row already says what Supervisor says."""
    return info is None or (row["state"] == info["state"] and row["pids"] == _pids(info))


def _started_at(info):
    """When Supervisor started its current process, as the runs' naive UTC (None when none runs)."""
    if not info["pid"]:
        return None
    if info.get("start"):
        return datetime.fromtimestamp(info["start"], timezone.utc).replace(tzinfo=None)
    return utcnow() - timedelta(seconds=info["uptime_s"] or 0) if info.get("uptime_s") is not None else None


class Follower:
    """One look per tick at this host's supervisord (under PROCESS_MANAGER=supervisor) and at the pane's hosts."""

    def __init__(self, app):
        self.cfg, self.celery = app.config, app.extensions["celery"]
        self.manager = app.extensions["supervisor"]
        self.local = self.manager.manager == "supervisor"
        self.fleet = pane(app)
        self._away = None  # why this host's supervisord did not answer last time: said once, not every tick

    def tick(self, now=None):
        if self.local:
            self._tick_local(now)
        if any(name != self.fleet.local for name in self.fleet.hosts):
            self._tick_pane(now)

    def _tick_local(self, now):
        try:
            infos = self.manager.host.infos()
        except PanelError as exc:
            if str(exc) != self._away:
                log.warning("following Supervisor: %s", exc)
            self._away = str(exc)
            return
        self._away = None
        if all(_settled(dog, infos[kind]) for kind, dog in watchdog.view().items()):
            return
        try:  # under the control lock: a start or stop through the panel says itself what it did
            with self.manager.control_lock(wait_s=self.cfg["WATCHDOG_LOCK_WAIT_S"]):
                infos = self.manager.host.infos()
                for kind, row in watchdog.rows().items():
                    if infos[kind] is not None:
                        seat = Seat(None, kind, self.manager.program_names[kind], self.manager.client,
                                    (self.manager.nodename,))
                        self._follow(seat, row, infos[kind], now or utcnow())
                db.session.commit()
        except ControlBusy:
            log.info("following Supervisor: a control action is in progress; looking again next tick")

    def _tick_pane(self, now):
        """The other hosts, asked at once; a host that does not answer keeps what was last seen of it."""
        seen = {(h["name"], p["name"]): (h["name"], p) for h in self.fleet.view()
                if h["reachable"] and h["name"] != self.fleet.local for p in h["programs"]}
        with reader(db.engine).connect() as conn:  # a deferred read: no write lock while nothing changed
            known = {(r.host, r.program): r for r in conn.execute(select(FollowedProgram.__table__))}
        if all(key in known and _settled({"state": known[key].state, "pids": known[key].pids}, info)
               for key, (_, info) in seen.items()):
            return
        rows = {(r.host, r.program): r for r in db.session.scalars(select(FollowedProgram))}
        nodes = workers.list_workers()
        for (host, kind), (_, info) in seen.items():
            row = rows.get((host, kind))
            if row is None:  # first seen: what it is now is where following starts
                db.session.add(FollowedProgram(host=host, program=kind, state=info["state"], pids=_pids(info),
                                               desired="running", reason="", changed_at=now or utcnow()))
                continue
            ours = tuple(n["name"] for n in nodes if n["pid"] in (row.pids or []) + _pids(info))
            seat = Seat(host, kind, info["program"], self.fleet.hosts[host], ours)
            self._follow(seat, row, info, now or utcnow())
        db.session.commit()

    def _follow(self, seat, row, info, now):
        pids = _pids(info)
        gone = [pid for pid in row.pids or [] if pid not in pids]
        if gone and row.desired == "running" and row.state in ("RUNNING", "STOPPING"):
            self._died(seat, gone, info)  # it was up: a crash (one that never came up is Supervisor's BACKOFF)
        elif pids and row.desired == "stopped":  # started outside the panel (supervisorctl): wanted again
            row.desired = "running"
        if info["state"] in ("BACKOFF", "FATAL") and row.state != info["state"]:
            self._trouble(seat, info)
        states.mirror(row, info["state"], info.get("spawn_error") or f"Supervisor: {info['state']}")
        row.pids, row.changed_at = pids, now

    def _died(self, seat, gone, info):
        """A process gone unasked: how it ended, the runs it took with it, the message it died on, an alert."""
        try:
            status = seat.client.last_exit(seat.program, gone[0])
        except PanelError:
            status = None
        how = oscontrol.describe_exit(status) if status is not None else "how it ended is not in supervisord's log"
        lost = self._lost(seat.nodes, info, how) if seat.kind == WORKER else 0
        then = f"Supervisor started it again (PID {info['pid']})" if info["pid"] else f"Supervisor: {info['state']}"
        where = f" on {seat.host}" if seat.host else ""
        pids = ", ".join(map(str, gone))
        message = f"{seat.kind}{where} (PID {pids}) stopped without a stop through the panel: {how}"
        if lost:
            message += f"; {lost} running run(s) marked failed"
        log.warning("%s; %s", message, then)
        self.manager.on_event(program=seat.kind, action="crash", outcome="error", pids=gone,
                              message=f"{message}; {then}", cause="unexpected exit", actor=ACTOR, exit_status=status,
                              host=seat.host)
        alerts.process_stopped(self.cfg, f"{seat.kind}{where}", gone, status, "unexpected exit")
        if seat.kind == WORKER:
            self._quarantine(seat, info, status)

    def _lost(self, nodes, info, how):
        """The dead worker's running runs end as lost; those the new process under the same name began are its own."""
        if not nodes:
            return 0
        query = select(Run.celery_task_id).where(Run.status == RUNNING, Run.worker.in_(nodes))
        if (since := _started_at(info)) is not None:
            query = query.where(Run.started_at < since)
        ids = db.session.scalars(query).all()
        return outcomes.end(ids, outcomes.lost(", ".join(nodes), f"died ({how})")).runs if ids else 0

    def _quarantine(self, seat, info, status):
        """The message the worker died on, read from its log less the new process's life."""
        try:
            text = seat.client.tail(seat.program, quarantine.LOG_TAIL_BYTES)
            if (since := _started_at(info)) is not None:
                text = crashlog.before(text, since.replace(tzinfo=timezone.utc).timestamp() // 1)
            quarantine.note_death(self.cfg, self.celery, text, status)
        except (PanelError, BrokerDown) as exc:
            log.warning("could not look for the message the worker died on: %s", exc)

    def _trouble(self, seat, info):
        """Supervisor retrying a program that does not stay up (BACKOFF), or giving up on it (FATAL)."""
        fatal = info["state"] == "FATAL"
        try:
            status = seat.client.last_exit(seat.program)
        except PanelError:
            status = None
        how = f" ({oscontrol.describe_exit(status)})" if status is not None else ""
        reason = info.get("spawn_error") or (f"Supervisor gave up starting it{how}" if fatal
                                             else f"it exited while starting{how}")
        where = f" on {seat.host}" if seat.host else ""
        self.manager.on_event(program=seat.kind, action="fatal" if fatal else "backoff", outcome="error", pids=[],
                              message=f"{seat.kind}{where}: {reason}", cause="supervisor", actor=ACTOR, host=seat.host)
        if fatal:
            alerts.process_fatal(self.cfg, f"{seat.kind}{where}", reason, 0, by=f"The Supervisor{where or ' here'}")
