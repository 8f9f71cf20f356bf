"""Median GET /celery_status through the real app next to `pgrep -f` as a subprocess."""
import logging
import statistics
import subprocess
import threading

import requests
from werkzeug.serving import make_server

from bench.common import print_rows, private_stack, row, summary, timed
from tests.helpers import api_client

ROUNDS = 400
WARMUP = 20


def results():
    """Measure, print the detail and return the table's row: the app's median against pgrep's."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per request drowns the figures
    with private_stack() as (app, _redis):
        results = app.extensions["supervisor"].start()
        assert all(r.ok for r in results.values()), results
        client = api_client(app, "viewer")  # authenticated as curl would be: a Bearer token
        token = app.extensions["test_tokens"]["viewer"]
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}/celery_status"
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {token}"
        assert client.get("/celery_status").get_json()["running"] is True

        in_app = timed(lambda: client.get("/celery_status"), ROUNDS, WARMUP)
        over_http = timed(lambda: http.get(url, timeout=5), ROUNDS, WARMUP)
        pgrep = timed(lambda: subprocess.run(["pgrep", "-f", "celery.*beat"], capture_output=True), ROUNDS, WARMUP)
        server.shutdown()

    print("GET /celery_status (worker and Beat running, real process table, Bearer-token auth)")
    print(summary("app (WSGI, in process)", in_app))
    print(summary("app over HTTP on loopback", over_http))
    print(summary("pgrep -f 'celery.*beat' (subprocess)", pgrep))
    ratio = statistics.median(in_app) / statistics.median(pgrep)
    ratio_http = statistics.median(over_http) / statistics.median(pgrep)
    print(f"ratio app/pgrep: {ratio:.2f}   ratio http/pgrep: {ratio_http:.2f}   "
          f"target: app median <= 5 ms and below pgrep -> "
          f"{'MET' if statistics.median(in_app) <= 5 and ratio < 1 else 'NOT MET'}")
    median = statistics.median(in_app)
    return [row("GET /celery_status median, one caller (in process)", median, "ms", "<= 5 ms and below pgrep",
                median <= 5 and ratio < 1, f"pgrep -f {statistics.median(pgrep):.2f} ms")]


def main():
    print_rows(results())


if __name__ == "__main__":
    main()
