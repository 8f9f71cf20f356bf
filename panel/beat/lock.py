"""Only one Beat sends: a lock in Redis, renewed while its holder lives (expires when it dies)."""
import logging
import os
import socket
import uuid

import redis

from panel.broker import connection

log = logging.getLogger("panel.beat_lock")
SOCKET_TIMEOUT_S = 2.0
DISPATCH_KEY = "panel:beat-dispatch:{}"  # per instance: what the sending Beat sent last, and when

# Renew only if we still hold it: compare the token, then extend.
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class BeatLock:
    def __init__(self, url, key, ttl_s):
        self.client = connection.redis_client(url, SOCKET_TIMEOUT_S)
        self.key = key
        self.ttl_ms = int(ttl_s * 1000)
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.held = False

    def holder(self):
        value = self.client.get(self.key)
        return value.decode() if value else None

    def acquire_or_renew(self):
        """True while we hold the lock; a Redis error counts as not holding it."""
        try:
            if self.held and self.client.eval(_RENEW, 1, self.key, self.token, self.ttl_ms):
                return True
            self.held = bool(self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))
        except redis.RedisError as exc:
            log.warning("beat lock: Redis error, not sending until it answers: %s", exc)
            self.held = False
        return self.held

    def release(self):
        try:
            self.client.eval(_RELEASE, 1, self.key, self.token)
        except redis.RedisError:
            pass
        self.held = False
