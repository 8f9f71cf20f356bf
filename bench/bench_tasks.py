"""Tasks used by the benches only."""
from celery import current_app, shared_task

from panel.broker import connection

_client = None


@shared_task(name="bench.tick")
def tick(key):
    """The smallest useful task: count itself in Redis so the bench knows when a burst is done."""
    global _client
    if _client is None:
        _client = connection.redis_client(current_app.conf.broker_url)
    _client.incr(key)
