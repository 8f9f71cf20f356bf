"""How the panel reaches the broker: a ping with its latency, and redacted URLs for messages."""
import time

import redis
from kombu import Connection

from panel.config import REDIS_SCHEMES, is_redis  # noqa: F401 (also the broker room's names for them)
from panel.errors import BrokerDown

CONNECT_TIMEOUT_S = 2.0


def redis_client(url, timeout_s=CONNECT_TIMEOUT_S):
    """The one way the panel makes a Redis client of its own: both socket timeouts always set."""
    return redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)


def redacted(url):
    """The URL without its password, for messages."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


def ping(url, timeout_s=CONNECT_TIMEOUT_S):
    """Latency in ms of one round trip to the broker; raises BrokerDown with the cause."""
    started = time.perf_counter()
    try:
        if is_redis(url):
            client = redis_client(url, timeout_s)
            try:
                client.ping()
            finally:
                client.close()
        else:
            with Connection(url, connect_timeout=timeout_s) as conn:
                conn.ensure_connection(max_retries=1, timeout=timeout_s)
    except Exception as exc:  # every transport raises its own kind
        raise BrokerDown(f"broker unreachable at {redacted(url)}: {exc}") from exc
    return (time.perf_counter() - started) * 1000
