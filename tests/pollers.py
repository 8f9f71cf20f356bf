"""Status pollers in a process of their own (spawned by tests/gunicorn_stack.run_load): standard library only, so a
fresh interpreter starts them at once. Fifty threads in one process would measure their own GIL, not the panel."""
import http.client
import threading
import time
from collections import Counter
from itertools import cycle

HTTP_TIMEOUT_S = 30
FAILED_PAUSE_S = 0.05
GO_WAIT_S = 300  # the spawning test starts the clock once every process is ready; a dead one never does


def poll(address, token, path_orders, go, done, ready, out):
    """One thread per path order; they start together on `go`, stop on `done`; their figures go back by `out`."""
    latencies, codes, lock = {}, {}, threading.Lock()
    threads = [threading.Thread(target=_poller, args=(address, token, paths, go, done, latencies, codes, lock),
                                daemon=True) for paths in path_orders]
    for thread in threads:
        thread.start()
    ready.put("pollers")
    for thread in threads:
        thread.join(timeout=GO_WAIT_S + HTTP_TIMEOUT_S)
    out.put((latencies, {path: dict(counts) for path, counts in codes.items()}))


def _poller(address, token, paths, go, done, latencies, codes, lock):
    """One client over one keep-alive connection (reopened after a failure), as a dashboard or a curl loop."""
    headers, conn = {"Authorization": f"Bearer {token}"}, None
    mine, seen = {}, {}
    if not go.wait(GO_WAIT_S):
        return
    for path in cycle(paths):
        if done.is_set():
            break
        started = time.perf_counter()
        try:
            conn = conn or http.client.HTTPConnection(*address, timeout=HTTP_TIMEOUT_S)
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            code = response.status
        except (OSError, http.client.HTTPException):
            code = 0
            if conn is not None:
                conn.close()
            conn = None
            done.wait(FAILED_PAUSE_S)  # a refused connection fails at once: no busy loop of failures
        mine.setdefault(path, []).append((time.perf_counter() - started) * 1000)
        seen.setdefault(path, Counter())[code] += 1
    with lock:
        for path, values in mine.items():
            latencies.setdefault(path, []).extend(values)
            codes.setdefault(path, Counter()).update(seen[path])
