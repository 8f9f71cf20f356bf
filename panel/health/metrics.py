"""`GET /metrics` in Prometheus text format: workers, Beat, runs by state, queues, run durations."""
import logging

from panel.cluster import queues, workers
from panel.errors import BrokerDown
from panel.host.processes import BEAT, WORKER
from panel.runlog import stats

log = logging.getLogger("panel.metrics")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value):
    """A label value escaped as the exposition format asks (backslash, quote, newline)."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Lines:
    """Builds the exposition text: HELP and TYPE once per family, then its samples."""

    def __init__(self):
        self.out = []

    def family(self, name, kind, text):
        self.out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]

    def sample(self, name, value, **labels):
        inside = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
        self.out.append(f"{name}{{{inside}}} {value}" if labels else f"{name} {value}")

    def text(self):
        return "\n".join(self.out) + "\n"


def _workers(lines):
    rows = workers.rows()
    online = [row for row in rows if workers.is_online(row)]
    online_names = {row.name for row in online}
    lines.family("celery_workers_online", "gauge", "Workers of the cluster whose heartbeat is fresh.")
    lines.sample("celery_workers_online", len(online))
    lines.family("celery_worker_up", "gauge", "1 when this worker's heartbeat is fresh, else 0.")
    for row in rows:
        lines.sample("celery_worker_up", int(row.name in online_names), worker=row.name)
    lines.family("celery_worker_active_tasks", "gauge", "Tasks the worker executes now (its last heartbeat).")
    for row in online:
        lines.sample("celery_worker_active_tasks", row.active or 0, worker=row.name)
    lines.family("celery_worker_processed_tasks_total", "counter",
                 "Tasks the worker process has taken since it started (its last heartbeat).")
    for row in rows:
        lines.sample("celery_worker_processed_tasks_total", row.processed or 0, worker=row.name)


def _processes(lines, status):
    lines.family("celery_beat_up", "gauge", "1 when a Celery Beat of this panel runs on this host.")
    lines.sample("celery_beat_up", int(status[BEAT]["active"]))
    lines.family("celery_local_processes", "gauge", "Main processes of this panel's worker and Beat on this host.")
    for kind in (WORKER, BEAT):
        lines.sample("celery_local_processes", status[kind]["count"], program=kind)


def _queues(lines, celery, cfg):
    lines.family("celery_broker_up", "gauge", "1 when the broker answered this scrape.")
    try:
        found = queues.lengths(celery, cfg.get("WORKER_QUEUES", ""))
    except BrokerDown as exc:
        log.warning("metrics: %s", exc)
        lines.sample("celery_broker_up", 0)
        return
    lines.sample("celery_broker_up", 1)
    lines.family("celery_queue_length", "gauge", "Messages waiting in the queue (every priority step).")
    for queue in found:
        lines.sample("celery_queue_length", queue["messages"], queue=queue["name"])


def _runs(lines, histogram):
    lines.family("celery_runs", "gauge", "Runs the panel's log holds, by Celery state.")
    for state, count in sorted(stats.by_state().items()):
        lines.sample("celery_runs", count, state=state)
    buckets, count, total_s = histogram.refresh()
    lines.family("celery_run_duration_seconds", "histogram", "Time from start to finish of finished runs.")
    for bound, cumulative in buckets:
        lines.sample("celery_run_duration_seconds_bucket", cumulative, le="+Inf" if bound == float("inf") else bound)
    lines.sample("celery_run_duration_seconds_sum", round(total_s, 6))
    lines.sample("celery_run_duration_seconds_count", count)


def render(app):
    """The whole exposition; a broker that is down costs its own families, never the scrape."""
    lines = Lines()
    _workers(lines)
    _processes(lines, app.extensions["supervisor"].status())
    _queues(lines, app.extensions["celery"], app.config)
    histogram = app.extensions.setdefault("run_duration_histogram", stats.DurationHistogram())
    _runs(lines, histogram)
    return lines.text()
