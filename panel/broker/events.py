"""Celery's event stream: receive worker and task events until told to stop."""


def capture(celery, handlers, stop):
    """Dispatch events to handlers by type until `stop` is set; raises when the broker connection fails."""
    with celery.connection_for_read() as conn:
        receiver = celery.events.Receiver(conn, handlers=handlers)
        receiver.connect_max_retries = 1  # the caller's backoff decides, so a stop can interrupt it
        # Checked at least once a second by kombu's consume loop, events or not.
        receiver.on_iteration = lambda: setattr(receiver, "should_stop", stop.is_set())
        receiver.capture(limit=None, timeout=None, wakeup=True)
