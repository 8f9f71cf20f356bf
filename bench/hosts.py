"""GET /api/hosts over 10 real supervisord processes (each its own password on a loopback port): every host
answering, then one of them silent (SIGSTOP), which must cost the timeout and not ten of them."""
import logging
import os
import signal
import tempfile
import threading
from pathlib import Path

import requests
from werkzeug.serving import make_server

from bench.common import percentile, private_stack, summary, timed
from tests.helpers import api_client, wait_for
from tests.supervisord_harness import SupervisordHost

HOSTS = 10
ROUNDS = 200
SILENT_ROUNDS = 50  # after the first, none waits the timeout
TIMEOUT_S = 2.0
PROGRAMS = {"worker": "celery-worker", "beat": "celery-beat"}
# The pane's cost is the XML-RPC calls, not what Supervisor runs: a program that sleeps stands for each.
COMMAND = "sleep 3600"


def start_hosts(folder):
    hosts = [SupervisordHost(folder / f"h{i}", f"h{i}", "redis://127.0.0.1:1/0",
                             {program: COMMAND for program in PROGRAMS.values()}) for i in range(HOSTS)]
    for host in hosts:
        wait_for(lambda h=host: all(h.running(p) for p in PROGRAMS.values()), 60, f"{host.name}'s programs")
    return hosts


def main():
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="panel-bench-hosts-") as tmp:
        hosts = start_hosts(Path(tmp))
        try:
            with private_stack(SUPERVISORS={h.name: h.url for h in hosts}, SUPERVISOR_PROGRAMS=PROGRAMS,
                               SUPERVISOR_TIMEOUT_S=TIMEOUT_S) as (app, _redis):
                api_client(app, "viewer")
                server = make_server("127.0.0.1", 0, app, threaded=True)
                threading.Thread(target=server.serve_forever, daemon=True).start()
                http = requests.Session()
                http.headers["Authorization"] = f"Bearer {app.extensions['test_tokens']['viewer']}"
                url = f"http://127.0.0.1:{server.server_port}/api/hosts"
                answer = http.get(url, timeout=10).json()["hosts"]
                assert all(h["reachable"] and len(h["programs"]) == 2 for h in answer), answer
                answering = timed(lambda: http.get(url, timeout=10), ROUNDS, 10)
                os.kill(hosts[0].proc.pid, signal.SIGSTOP)
                try:
                    first = timed(lambda: http.get(url, timeout=30), 1, 0)  # waits the timeout out, once
                    silent = timed(lambda: http.get(url, timeout=30), SILENT_ROUNDS, 0)  # not waited for again
                    assert not http.get(url, timeout=30).json()["hosts"][0]["reachable"]
                finally:
                    os.kill(hosts[0].proc.pid, signal.SIGCONT)
                server.shutdown()
        finally:
            for host in hosts:
                host.stop()
    print(f"GET /api/hosts over HTTP, {HOSTS} supervisord hosts, SUPERVISOR_TIMEOUT_S={TIMEOUT_S:g}")
    print(summary("every host answering", answering))
    print(summary("one host silent (SIGSTOP), first poll", first))
    print(summary("one host silent, the polls after it", silent))
    worst = max(percentile(first, 95), percentile(silent, 95))
    print(f"p95 targets: under 50 ms answering ({percentile(answering, 95):.1f} ms), under the timeout plus 50 ms "
          f"silent ({worst:.1f} ms of {TIMEOUT_S * 1000 + 50:.0f} ms; after the first poll "
          f"{percentile(silent, 95):.1f} ms: a silent host is not waited for again until it answers)")


if __name__ == "__main__":
    main()
