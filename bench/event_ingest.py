"""Task events into the run log (SQLite), from a producer at full speed, beside a real worker's rate.

Targets: ingestion at 5,000 events/s or more with 0 lost, and at least 3 times what a real prefork worker
produces; an event's run visible in GET /api/runs/<id> within 1 s at p95 under that load; the panel's RSS
at most +20 MB from 0 to 1,000,000 recorded runs. `--runs N` sets the RSS phase's size (default 1,000,000).
"""
import argparse
import logging
import multiprocessing
import statistics
import subprocess
import threading
import time
import uuid
from contextlib import contextmanager

import psutil
from sqlalchemy import func, select

from bench.common import percentile, private_stack
from bench.record_throughput import burst_rate
from models import Run
from panel.database import unmapped_engine
from panel.runlog import from_events
from tests.helpers import api_client, wait_for

LOAD_RUNS = 20_000        # x3 events (received, started, succeeded)
MARK_EVERY = 400          # runs between two latency markers
EVENTS_PER_RUN = 3


def _producer(broker_url, runs, per_run, marks, prefix):
    """A separate process publishing task events as fast as it can; marker runs report their publish time."""
    from celery import Celery
    app = Celery(broker=broker_url)
    with app.connection_for_write() as conn:
        dispatcher = app.events.Dispatcher(conn, hostname="bench@producer", enabled=True)
        for n in range(runs):
            task_id = f"{prefix}-{n}"
            if per_run == EVENTS_PER_RUN:
                dispatcher.send("task-received", uuid=task_id, name="bench.load", args="[1, 2]", kwargs="{}",
                                retries=0)
                dispatcher.send("task-started", uuid=task_id)
            dispatcher.send("task-succeeded", uuid=task_id, result="3", runtime=0.001, name="bench.load")
            if marks is not None and n % MARK_EVERY == 0:
                marks.put((task_id, time.time()))
        if marks is not None:
            marks.put(None)


_engines = {}


def _counter(app):
    """The bench's own engine for counting, without the mmap: its scans must not add to the RSS it measures."""
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    return _engines.setdefault(uri, unmapped_engine(uri))


def _count(app, prefix):
    with _counter(app).connect() as conn:
        return conn.scalar(select(func.count()).select_from(Run).where(Run.celery_task_id.like(f"{prefix}-%")))


def _wait_subscribed(app):
    """Events on Redis are PUB/SUB: publish until one run shows, so the recorder listens before the load."""
    prefix = f"warm{uuid.uuid4().hex[:6]}"
    deadline = time.monotonic() + 30
    while not _count(app, prefix):
        if time.monotonic() > deadline:
            raise RuntimeError("the recorder never received an event")
        _producer(app.config["CELERY_BROKER_URL"], 1, 1, None, prefix)
        time.sleep(0.2)


def _watch_markers(app, marks, seen):
    """Time from each marker's publish to its run answered by GET /api/runs/<id>, completed."""
    client = api_client(app, "viewer")
    waiting = {}
    done = False
    while not done or waiting:
        while not marks.empty():
            item = marks.get()
            if item is None:
                done = True
            else:
                waiting[item[0]] = item[1]
        for task_id, sent in list(waiting.items()):
            body = client.get(f"/api/runs/{task_id}").get_json() or {}
            if (body.get("run") or body).get("status") == "completed":
                seen.append((time.time() - sent) * 1000)
                del waiting[task_id]
        time.sleep(0.02)


def load_phase(app):
    """Ingestion rate with 0 lost, and publish-to-visible latency under that load."""
    prefix = f"load{uuid.uuid4().hex[:6]}"
    marks, seen = multiprocessing.Queue(), []
    watcher = threading.Thread(target=_watch_markers, args=(app, marks, seen), daemon=True)
    watcher.start()
    started = time.perf_counter()
    # Two producer processes, so the load is not bound by one publisher; only the first sends markers.
    producers = [multiprocessing.Process(target=_producer, args=(app.config["CELERY_BROKER_URL"], LOAD_RUNS // 2,
                                                                 EVENTS_PER_RUN, marks if n == 0 else None,
                                                                 f"{prefix}-{n}")) for n in range(2)]
    for producer in producers:
        producer.start()
    for producer in producers:
        producer.join()
        assert producer.exitcode == 0, "a producer failed"
    produced_s = time.perf_counter() - started
    wait_for(lambda: _completed(app, prefix) == LOAD_RUNS, 300, "every run of the load to be completed")
    ingested_s = time.perf_counter() - started
    watcher.join(60)
    events = LOAD_RUNS * EVENTS_PER_RUN
    return events / produced_s, events / ingested_s, seen


def _completed(app, prefix):
    with _counter(app).connect() as conn:
        return conn.scalar(select(func.count()).select_from(Run).where(
            Run.celery_task_id.like(f"{prefix}-%"), Run.status == "completed", Run.result == "3"))


def memory_mb():
    """(RSS, its anonymous part) of this process in MB. The recorder reads without the database's mmap, and so
    does this bench's counting; file pages left in RSS are the API's reads through the panel's own engine."""
    fields = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
    return psutil.Process().memory_info().rss / 2**20, int(fields["RssAnon"].split()[0]) / 1024


def rss_phase(app, runs):
    """The panel process's memory before and after recording `runs` runs (one event each)."""
    before, samples = memory_mb(), []
    prefix, step = f"rss{uuid.uuid4().hex[:6]}", max(1, runs // 10)
    for chunk in range(0, runs, step):
        producer = multiprocessing.Process(target=_producer, args=(app.config["CELERY_BROKER_URL"],
                                                                   min(step, runs - chunk), 1, None,
                                                                   f"{prefix}-{chunk}"))
        producer.start()
        producer.join()
        assert producer.exitcode == 0, "the producer failed"
        wait_for(lambda: _count(app, prefix) >= chunk + min(step, runs - chunk), 600, "the chunk to be recorded")
        samples.append((chunk + step, memory_mb()))
    return before, samples


def worker_rate(app, redis_url):
    """Events per second a real prefork worker (concurrency 2) sends for a burst of small tasks."""
    result = app.extensions["supervisor"].start(("worker",))
    assert result["worker"].ok, result["worker"].log_tail
    burst_rate(app, redis_url)  # warm-up
    tasks_per_s = statistics.median(burst_rate(app, redis_url) for _ in range(3))
    app.extensions["supervisor"].stop(("worker",))
    return tasks_per_s * EVENTS_PER_RUN


DRAIN_RUNS = 30_000  # x3 events, within the queue's x-max-length (100,000)


@contextmanager
def rabbitmq_vhost():
    """A vhost of the bench's own on the machine's RabbitMQ, deleted at the end."""
    vhost = f"ccp-bench-{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "add_vhost", vhost], check=True, capture_output=True, timeout=60)
    try:
        subprocess.run(["rabbitmqctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"], check=True,
                       capture_output=True, timeout=60)
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True, timeout=60)


def drain_phase():
    """Ingestion capacity, not bound by a producer: events wait in the panel's durable queue on RabbitMQ while
    the recorder is stopped, then the recorder drains them. Events per second from its start to the last row."""
    with rabbitmq_vhost() as url, private_stack(CELERY_BROKER_URL=url, RECORD_RUNS=False) as (app, _):
        stop = from_events.start(app)
        _wait_subscribed(app)  # the durable queue exists and is bound
        stop.set()
        wait_for(lambda: not any(t.name == "run-events" and t.is_alive() for t in threading.enumerate()), 15,
                 "the recorder to stop")
        prefix = f"drain{uuid.uuid4().hex[:6]}"
        producers = [multiprocessing.Process(target=_producer, args=(url, DRAIN_RUNS // 2, EVENTS_PER_RUN, None,
                                                                     f"{prefix}-{n}")) for n in range(2)]
        for producer in producers:
            producer.start()
        for producer in producers:
            producer.join()
        started = time.perf_counter()
        stop = from_events.start(app)
        try:
            wait_for(lambda: _completed(app, prefix) >= DRAIN_RUNS, 300, "the queue to be drained")
            return DRAIN_RUNS * EVENTS_PER_RUN / (time.perf_counter() - started)
        finally:
            stop.set()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000, help="runs recorded in the RSS phase")
    args = parser.parse_args(argv)
    logging.getLogger("panel.errors").setLevel(logging.ERROR)  # the markers' 404s until they are recorded
    with private_stack(WORKER_CONCURRENCY=2, WORKER_LOGLEVEL="warning", RECORD_RUNS=False) as (app, rds):
        worker = worker_rate(app, rds.url)
        stop = from_events.start(app)
        try:
            _wait_subscribed(app)
            produced, ingested, latencies = load_phase(app)
            print(f"real prefork worker (concurrency 2) sends {worker:9.0f} events/s (received, started, succeeded)")
            print(f"producer published                     {produced:9.0f} events/s")
            print(f"ingested into SQLite, 0 lost           {ingested:9.0f} events/s   "
                  f"{ingested / worker:.1f}x the worker (target >= 5,000/s and >= 3x)")
            print(f"publish -> visible in GET /api/runs/<id> median {statistics.median(latencies):7.1f} ms   "
                  f"p95 {percentile(latencies, 95):7.1f} ms   n={len(latencies)} (target p95 <= 1000 ms)")
            (rss0, anon0), samples = rss_phase(app, args.runs)
            for recorded, (rss, anon) in samples:
                print(f"after {recorded:>9,} runs recorded: anonymous {anon:6.1f} MB ({anon - anon0:+5.1f}; target "
                      f"<= +20)   RSS {rss:6.1f} MB ({rss - rss0:+6.1f}; target <= +20)")
        finally:
            stop.set()
    drained = drain_phase()
    print(f"capacity: a queue of {DRAIN_RUNS * EVENTS_PER_RUN:,} waiting events drained at {drained:6.0f} "
          f"events/s   {drained / worker:.1f}x the worker (RabbitMQ; target >= 5,000/s and >= 3x)")


if __name__ == "__main__":
    main()
