"""What became of the open runs: worked out from what is knowable, by one rule, at start-up and in every pass.

A run the log shows open may have ended while nobody watched (the panel restarted, an event was missed). The
facts are read once per pass for all runs: first the queues (what still waits, or was delivered and not yet
acknowledged), then each worker's active, reserved, scheduled and revoked lists and its uptime (one inspect call
per list for all workers together, not one per run), then the result backend. decide() turns them into an
ending; a worker that lives and no longer holds a run it took means the run ended, and when nothing stored its
outcome it ends UNKNOWN, never FAILURE. Only a worker that restarted since it took the run, or one silent past a
second, longer wait while the broker answers, loses its runs.
"""
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import NamedTuple

from sqlalchemy import func, select

from models import PENDING, Run, WorkerNode, db, utcnow
from panel.broker import connection, queues, remote, results
from panel.runlog import outcomes
from panel.runlog.ending import open_clause

log = logging.getLogger("panel.settle")
IN_FLIGHT_S = 1.0     # an event of a run's end reaches the run log within this (the recorder writes every 0.2 s)
SILENT_WAIT_S = 5.0   # a worker silent to the first ask gets this long to answer a ping before its runs are lost
CLOCKS_S = 2.0        # uptime is whole seconds, a run's start the worker's clock: only more than this is a restart
WAITING_READ_MAX = 20_000  # messages read from the queues per pass at most; past it the queues count as unread
LISTS = ("active", "reserved", "scheduled", "revoked", "stats")
STORED = "stored"     # decide(): the result backend holds the outcome


class OpenRun(NamedTuple):
    task_id: str
    status: str
    worker: str | None
    since: object  # started_at, else queued_at (naive UTC)


class WorkerFacts(NamedTuple):
    held: set       # active, reserved and scheduled (ETA) ids
    revoked: set
    uptime_s: float | None


class Facts(NamedTuple):
    now: object
    answered: dict  # {worker: WorkerFacts}
    silent: set     # asked, and silent to inspect and to a longer ping while the broker answers
    waiting: set | None  # ids in the queues or delivered unacknowledged; None: the queues cannot be read whole
    complete: bool  # every worker known to be up answered, so an id held nowhere is held nowhere
    stored: dict    # {task id: the backend's meta} of the runs it holds an ending for
    no_store: bool  # the project keeps no results at all


def open_runs(min_age_s):
    """The runs the log shows open since at least min_age_s (younger ones may be in flight to a worker)."""
    cutoff = utcnow() - timedelta(seconds=min_age_s)
    since = func.coalesce(Run.started_at, Run.queued_at)
    rows = db.session.execute(select(Run.celery_task_id, Run.status, Run.worker, since)
                              .where(open_clause(Run.status), since <= cutoff)).all()
    db.session.rollback()  # no transaction held while we wait for workers
    return [OpenRun(*row) for row in rows]


def _worker_facts(replies, worker):
    held = {task.get("id") for part in ("active", "reserved") for task in replies[part].get(worker) or []}
    held |= {(entry.get("request") or {}).get("id") for entry in replies["scheduled"].get(worker) or []}
    uptime = (replies["stats"].get(worker) or {}).get("uptime")
    return WorkerFacts(held, set(replies["revoked"].get(worker) or []),
                       float(uptime) if isinstance(uptime, (int, float)) else None)


def ask_workers(celery, workers, timeout_s):
    """{list: {worker: reply}} of every list, asked of all the workers at once, the lists in parallel."""
    with ThreadPoolExecutor(max_workers=len(LISTS), thread_name_prefix="settle") as pool:
        asked = {part: pool.submit(remote.ask, celery, sorted(workers), part, timeout_s=timeout_s) for part in LISTS}
        return {part: future.result() for part, future in asked.items()}


def _silent(celery, workers):
    """Of workers that did not answer inspect: those that miss a longer ping too, with the broker answering.

    Under load a reply window passes without a worker being gone; with the broker down nothing can be known."""
    if not workers:
        return set()
    answering = set(remote.answering(celery, sorted(workers), timeout_s=SILENT_WAIT_S))
    connection.ping(celery.conf.broker_url)  # raises BrokerDown: then nobody is lost
    return set(workers) - answering


def survey(celery, runs, timeout_s=remote.TIMEOUT_S):
    """The facts about these runs, read in an order that lets no message slip between two looks."""
    known = set(db.session.scalars(select(WorkerNode.name).where(WorkerNode.online)))
    db.session.rollback()
    waiting = _waiting(celery)  # before the workers: a message taken after this is in a worker's lists
    workers = {run.worker for run in runs if run.worker} | known | set(remote.answering(celery, timeout_s=timeout_s))
    replies = ask_workers(celery, workers, timeout_s)
    answered = {w: _worker_facts(replies, w) for w in workers if w in replies["active"]}
    silent = _silent(celery, workers - set(answered))
    held = set().union(*(f.held for f in answered.values()), waiting or ())
    try:
        stored = results.finished_results(celery, [run.task_id for run in runs if run.task_id not in held])
    except Exception as exc:  # the backend is away: what it holds cannot count, nor can its silence
        log.warning("settle: cannot read stored results (%s); runs no worker holds stay open", exc)
        stored = None
    return Facts(utcnow(), answered, silent, waiting, complete=workers <= set(answered) | silent, stored=stored,
                 no_store=not results.keeps_results(celery))


def _waiting(celery):
    names = {celery.conf.task_default_queue or "celery"}
    try:
        return queues.waiting_ids(celery, names | queues.bound(celery), limit=WAITING_READ_MAX)
    except Exception as exc:  # the broker is away: then a silent worker's ping fails too, and nobody is lost
        log.warning("settle: cannot read the queues (%s)", exc)
        return None


def decide(run, facts):
    """How one open run ended: STORED (the backend holds it), an Ending, or None while it may still run."""
    if facts.stored is None or any(run.task_id in f.held for f in facts.answered.values()):
        return None
    if run.task_id in facts.stored:
        return STORED
    if facts.waiting is not None and run.task_id in facts.waiting:
        return None  # still queued, or delivered and not yet acknowledged
    revoker = next((w for w, f in sorted(facts.answered.items()) if run.task_id in f.revoked), None)
    if revoker:
        return outcomes.revoked_by_worker(revoker)
    if run.worker:
        return _of_worker(run, facts)
    if facts.waiting is None or not facts.complete:
        return None  # its message may wait where the panel cannot read, or with a worker that did not answer
    return outcomes.unknown("Its message left the queue while the panel was not watching and no worker holds it; "
                            + _nothing_stored(facts))


def _of_worker(run, facts):
    """A run its worker took: that worker's answer (or lasting silence) says what became of it."""
    worker = facts.answered.get(run.worker)
    if worker is None:
        if run.worker not in facts.silent:
            return None
        return outcomes.lost(run.worker, f"is gone (no answer to inspect, nor to a ping within {SILENT_WAIT_S:g} s)")
    age_s = (facts.now - run.since).total_seconds()
    restarted = worker.uptime_s is not None and worker.uptime_s + CLOCKS_S < age_s
    if run.status == PENDING and restarted and facts.waiting is None:
        return None  # a message it had not started went back to the queue, where the panel cannot look
    if run.status != PENDING and restarted:
        return outcomes.lost(run.worker, f"restarted after it started this run (up {worker.uptime_s:.0f} s)")
    return outcomes.unknown(f"Ended while the panel was not watching: worker {run.worker} lives and no longer holds "
                            "it; " + _nothing_stored(facts))


def _nothing_stored(facts):
    if facts.no_store:
        return "the project stores no results"
    return "the result backend holds no outcome for it (the project ignores this task's result, or it expired)"


def settle(celery, runs, timeout_s=remote.TIMEOUT_S):
    """Survey and end these open runs as decide() says; returns how many ended."""
    if not runs:
        return 0
    return apply(runs, survey(celery, runs, timeout_s))


def apply(runs, facts):
    """Write what decide() says: stored outcomes one by one, every other ending in batches; how many ended."""
    by_ending, fixed = {}, 0
    for run in runs:
        verdict = decide(run, facts)
        if verdict == STORED:
            fixed += outcomes.from_backend(run.task_id, facts.stored[run.task_id])
        elif verdict is not None:
            by_ending.setdefault(verdict, []).append(run.task_id)
    if by_ending:
        time.sleep(IN_FLIGHT_S)  # a run that ended just before the survey: its own event is written first
    for ending, task_ids in by_ending.items():
        ended = outcomes.end(task_ids, ending).runs
        fixed += ended
        if ended and ending.cause == "lost":
            log.warning("settle: %d run(s) marked failed: %s", ended, ending.reason)
    return fixed
