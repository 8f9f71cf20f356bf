"""Tasks used by the benches only."""
import redis
from celery import current_app, shared_task

_client = None


@shared_task(name="bench.tick")
def tick(key):
    """The smallest useful task: count itself in Redis so the bench knows when a burst is done."""
    global _client
    if _client is None:
        _client = redis.Redis.from_url(current_app.conf.broker_url)
    _client.incr(key)
