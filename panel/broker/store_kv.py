"""A result store Celery itself reads: Redis (whose task keys can be listed) and any other backend Celery loads."""
from datetime import datetime, timezone

from celery.app.backends import by_url

from panel.broker import connection
from panel.errors import BrokerDown


class KeyValue:
    """Reads through a Celery backend built from the project's URL (the panel's own when they are the same)."""

    def __init__(self, celery, url):
        self.celery, self.url = celery, url
        self.kind = "redis" if url.startswith(("redis://", "rediss://", "unix://", "redis+socket://")) else "other"
        self.listable = self.kind == "redis"
        self._backend = None

    @property
    def backend(self):
        if self._backend is None:
            if str(self.celery.conf.result_backend or "") == self.url:
                self._backend = self.celery.backend
            else:  # the panel's Celery app writes elsewhere: read the project's store with a backend of its own
                cls, url = by_url(self.url, self.celery.loader)
                self._backend = cls(app=self.celery, url=url)
        return self._backend

    def get(self, task_id):
        meta = self.backend.get_task_meta(task_id)
        if meta.get("status") in (None, "PENDING") and not meta.get("date_done"):
            return None
        return normal(dict(meta, task_id=task_id))

    def forget(self, task_id):
        self.backend.forget(task_id)
        return True

    def check(self):
        if self.kind == "redis":  # one bounded ping, as the broker's: a store that is down answers in seconds
            try:
                return {"ok": True, "kind": self.kind, "latency_ms": round(connection.ping(self.url), 2)}
            except BrokerDown as exc:
                return {"ok": False, "kind": self.kind, "error": str(exc).replace("broker", "result backend", 1)}
        self.backend.get_task_meta("celery-check-probe")  # an unknown id: a read that proves the store answers
        return {"ok": True, "kind": self.kind,
                "note": "read one run at a time; what ended while the panel was away cannot be listed here"}

    def ended_since(self, since, scan_count=1000, batch=500):
        """SCAN of the task keys on Redis, streamed (a day of results may be millions); other stores give none."""
        backend = self.backend
        client = getattr(backend, "client", None)
        if not hasattr(backend, "task_keyprefix") or client is None or not hasattr(client, "scan_iter"):
            return []
        prefix = backend.task_keyprefix
        pattern = (prefix.decode() if isinstance(prefix, bytes) else prefix) + "*"
        found, keys = [], []
        for key in client.scan_iter(match=pattern, count=scan_count):
            keys.append(key)
            if len(keys) == batch:
                found += self._ended(client.mget(keys), since)
                keys = []
        return found + (self._ended(client.mget(keys), since) if keys else [])

    def _ended(self, payloads, since):
        out = []
        for payload in payloads:
            meta = self._decoded(payload)
            if meta and meta.get("status") in self.backend.READY_STATES:
                meta = normal(meta)
                if meta["date_done"] and meta["date_done"] >= since:
                    out.append(meta)
        return out

    def _decoded(self, payload):
        try:
            return self.backend.decode_result(payload) if payload else None
        except Exception:  # a key some other program wrote under the same prefix
            return None


EXTENDED = ("name", "args", "kwargs", "worker", "retries", "queue")


def normal(meta):
    """A backend's meta in the seam's shape: date_done aware, the extended fields present (None when not kept)."""
    out = dict(meta, date_done=done_at(meta.get("date_done")))
    for field in EXTENDED:
        out.setdefault(field, None)
    return out


def done_at(value):
    """date_done as an aware datetime (Celery stores ISO text; a naive one is UTC)."""
    try:
        value = datetime.fromisoformat(value) if isinstance(value, str) else value
    except ValueError:
        return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
