"""Status pollers in a process of their own (spawned by tests/gunicorn_stack.run_load): standard library only, so a
fresh interpreter starts them at once. Fifty threads in one process would measure their own GIL, not the panel.

Each poller speaks HTTP/1.1 over a raw keep-alive socket, as a load tool (wrk, hey) does: ~50 us of CPU a request
against ~160 us with http.client (one process, measured), CPU that on two shared cores comes out of the server's share.
"""
import socket
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
    # The threads look at a local event: the shared one is a lock across processes, and fifty threads asking it
    # after every request cost more CPU than the requests themselves.
    stop = threading.Event()
    threads = [threading.Thread(target=_poller, args=(address, token, paths, go, stop, latencies, codes, lock),
                                daemon=True) for paths in path_orders]
    for thread in threads:
        thread.start()
    ready.put("pollers")
    done.wait(GO_WAIT_S + HTTP_TIMEOUT_S)
    stop.set()
    for thread in threads:
        thread.join(timeout=GO_WAIT_S + HTTP_TIMEOUT_S)
    out.put((latencies, {path: dict(counts) for path, counts in codes.items()}))


def _poller(address, token, paths, go, done, latencies, codes, lock):
    """One client over one keep-alive connection (reopened after a failure), as a dashboard or a curl loop."""
    prepared = {path: (f"GET {path} HTTP/1.1\r\nHost: {address[0]}:{address[1]}\r\n"
                       f"Authorization: Bearer {token}\r\n\r\n").encode() for path in paths}
    conn = None
    mine, seen = {}, {}
    if not go.wait(GO_WAIT_S):
        return
    for path in cycle(paths):
        if done.is_set():
            break
        started = time.perf_counter()
        try:
            conn = conn or Connection(address, HTTP_TIMEOUT_S)
            code = conn.get(prepared[path])
            if conn.closed:
                conn = None
        except (OSError, ValueError):
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


class Connection:
    """One keep-alive HTTP/1.1 connection: sends a prepared request, reads the whole answer, returns its status."""

    def __init__(self, address, timeout_s):
        self.sock = socket.create_connection(address, timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.closed = False

    def get(self, request):
        """The status code of the answer to `request`, its body read by Content-Length, chunks or the close."""
        self.sock.sendall(request)
        head = self._until(b"\r\n\r\n").decode("latin-1").lower()
        code = int(head[9:12])
        fields = dict(line.split(":", 1) for line in head.split("\r\n")[1:] if ":" in line)
        if "content-length" in fields:
            self._exactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding", "").strip() == "chunked":
            while (size := int(self._until(b"\r\n").split(b";")[0], 16)) > 0:
                self._exactly(size + 2)
            while self._until(b"\r\n"):  # trailers, up to the empty line
                pass
        else:
            self._to_close()
        if fields.get("connection", "").strip() == "close" and not self.closed:
            self.close()
        return code

    def close(self):
        self.closed = True
        self.sock.close()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            self.close()
            raise ConnectionError("the server closed the connection mid-answer")
        self.buffer += chunk

    def _until(self, marker):
        while (at := self.buffer.find(marker)) < 0:
            self._fill()
        found, self.buffer = self.buffer[:at], self.buffer[at + len(marker):]
        return found

    def _exactly(self, size):
        while len(self.buffer) < size:
            self._fill()
        found, self.buffer = self.buffer[:size], self.buffer[size:]
        return found

    def _to_close(self):
        try:
            while True:
                self._fill()
        except ConnectionError:
            self.buffer = b""
