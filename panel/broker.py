"""The broker seam: reachability and worker pings, always with a timeout and a destination."""
import time

import redis
from kombu import Connection

CONNECT_TIMEOUT_S = 2.0


class BrokerDown(RuntimeError):
    """The broker did not answer; routes turn this into 503."""


def _redactable(url):
    """The URL without its password, for messages."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


def ping(url, timeout_s=CONNECT_TIMEOUT_S):
    """Latency in ms of one round trip to the broker; raises BrokerDown with the cause."""
    started = time.perf_counter()
    try:
        if url.startswith(("redis://", "rediss://", "unix://")):
            client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
            try:
                client.ping()
            finally:
                client.close()
        else:
            with Connection(url, connect_timeout=timeout_s) as conn:
                conn.ensure_connection(max_retries=1, timeout=timeout_s)
    except Exception as exc:  # every transport raises its own kind
        raise BrokerDown(f"broker unreachable at {_redactable(url)}: {exc}") from exc
    return (time.perf_counter() - started) * 1000


def ping_worker(celery, nodename, timeout_s=1.0):
    """True when the named worker answers a ping addressed to it alone."""
    replies = celery.control.ping(destination=[nodename], timeout=timeout_s, limit=1) or []
    return any(nodename in reply for reply in replies)
