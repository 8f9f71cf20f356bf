"""Run every bench in turn (`make bench`)."""
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCHES = ("bench.status_latency", "bench.record_throughput", "bench.cancel_latency", "bench.worker_detail",
           "bench.runs_query", "bench.status_load", "bench.fault_answers", "bench.event_ingest", "bench.beat_failover",
           "bench.sort_pages", "bench.bulk_actions", "bench.restart_settle",
           "bench.readback_rate", "bench.hosts")


def main():
    for name in BENCHES:
        print(f"\n== {name}")
        runpy.run_module(name, run_name="__main__")


if __name__ == "__main__":
    main()
