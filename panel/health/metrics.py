"""`GET /metrics`: a prometheus_client collector that reads the process table, the broker and the run tally (kept by
the database as runs are written, so a scrape costs the same at any size of log) at scrape time."""
import logging

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.utils import floatToGoString

from panel.cluster import queues, workers
from panel.errors import BrokerDown
from panel.host.processes import BEAT, WORKER
from panel.runlog import tally

log = logging.getLogger("panel.metrics")


class PanelCollector:
    """Every family, read anew at each scrape; a broker that is down costs its own families, never the scrape."""

    def __init__(self, app):
        self.app = app

    def collect(self):
        with self.app.app_context():
            yield from _workers()
            yield from _processes(self.app.extensions["supervisor"].status())
            yield from _queues(self.app.extensions["celery"], self.app.config.get("WORKER_QUEUES", ""))
            yield from _runs(tally.read())


def _workers():
    rows = workers.rows()
    online = {row.name for row in rows if workers.is_online(row)}
    yield GaugeMetricFamily("celery_workers_online", "Workers of the cluster whose heartbeat is fresh.", len(online))
    up = GaugeMetricFamily("celery_worker_up", "1 when this worker's heartbeat is fresh, else 0.", labels=["worker"])
    active = GaugeMetricFamily("celery_worker_active_tasks", "Tasks the worker executes now (its last heartbeat).",
                               labels=["worker"])
    processed = CounterMetricFamily("celery_worker_processed_tasks_total", "Tasks the worker process has taken "
                                    "since it started (its last heartbeat).", labels=["worker"])
    for row in rows:
        up.add_metric([row.name], int(row.name in online))
        processed.add_metric([row.name], row.processed or 0)
        if row.name in online:
            active.add_metric([row.name], row.active or 0)
    yield from (up, active, processed)


def _processes(status):
    yield GaugeMetricFamily("celery_beat_up", "1 when a Celery Beat of this panel runs on this host.",
                            int(status[BEAT]["active"]))
    local = GaugeMetricFamily("celery_local_processes", "Main processes of this panel's worker and Beat on this host.",
                              labels=["program"])
    for kind in (WORKER, BEAT):
        local.add_metric([kind], status[kind]["count"])
    yield local


def _queues(celery, configured):
    try:
        found = queues.lengths(celery, configured)
    except BrokerDown as exc:
        log.warning("metrics: %s", exc)
        yield GaugeMetricFamily("celery_broker_up", "1 when the broker answered this scrape.", 0)
        return
    yield GaugeMetricFamily("celery_broker_up", "1 when the broker answered this scrape.", 1)
    length = GaugeMetricFamily("celery_queue_length", "Messages waiting in the queue (every priority step).",
                               labels=["queue"])
    for queue in found:
        length.add_metric([queue["name"]], queue["messages"])
    yield length


def _runs(figures):
    runs = GaugeMetricFamily("celery_runs", "Runs the panel's log holds, by Celery state.", labels=["state"])
    for state, count in sorted(figures.by_state.items()):
        runs.add_metric([state], count)
    yield runs
    yield HistogramMetricFamily("celery_run_duration_seconds", "Time from start to finish of finished runs, each "
                                "observed once, when its runtime becomes known.",
                                buckets=[(floatToGoString(bound), n) for bound, n in figures.buckets()],
                                sum_value=round(figures.total_s, 6))


def render(app):
    """(body, content type) of one scrape, in the 0.0.4 text format."""
    registry = app.extensions.get("metrics_registry")
    if registry is None:
        registry = app.extensions["metrics_registry"] = CollectorRegistry()
        registry.register(PanelCollector(app))
    return generate_latest(registry), CONTENT_TYPE_PLAIN_0_0_4
