"""Run every bench in turn (`make bench`), then print one table of every measure with its target and verdict.

A bench that offers `results()` runs there and returns its table rows; an older one runs its `main()` and only
prints. `BENCH_ONLY=runs_query,status_load make bench` runs a subset.
"""
import importlib
import os
import runpy
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import print_rows, row  # noqa: E402

BENCHES = ("bench.status_latency", "bench.status_load", "bench.record_throughput", "bench.cancel_latency",
           "bench.bulk_actions", "bench.worker_detail", "bench.runs_query", "bench.pg_scale",
           "bench.fault_answers", "bench.event_ingest", "bench.beat_failover",
           "bench.sort_pages", "bench.restart_settle", "bench.readback_rate", "bench.hosts", "bench.flower_reads")


def chosen():
    only = {name.strip() for name in os.environ.get("BENCH_ONLY", "").split(",") if name.strip()}
    return [name for name in BENCHES if not only or name.rpartition(".")[2] in only]


def run(name):
    """The bench's table rows; a bench that fails is a NOT MET row of its own, and the others still run."""
    began = time.monotonic()
    try:
        module = importlib.import_module(name)
        if hasattr(module, "results"):
            return module.results()
        runpy.run_module(name, run_name="__main__")
        return []
    except Exception as exc:  # one broken bench must not hide every other figure
        traceback.print_exc()
        return [row(f"{name} did not finish: {type(exc).__name__}", 0, "s", "runs to the end", False)]
    finally:
        print(f"({name}: {time.monotonic() - began:.0f} s)")


def main():
    rows = []
    for name in chosen():
        print(f"\n== {name}", flush=True)
        rows.extend(run(name))
    print_rows(rows, "== every measure, its target and its verdict (this run, this machine)")
    missed = sum(not r["met"] for r in rows)
    print(f"\n{len(rows) - missed} MET, {missed} NOT MET")


if __name__ == "__main__":
    main()
