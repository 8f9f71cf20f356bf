"""Celery's event stream: receive worker and task events until told to stop."""


def capture(celery, handlers, stop):
    """Dispatch events to handlers by type until `stop` is set; raises when the broker connection fails."""
    with celery.connection_for_read() as conn:
        receiver = celery.events.Receiver(conn, handlers=handlers)
        receiver.connect_max_retries = 1  # the caller's backoff decides, so a stop can interrupt it
        # Checked at least once a second by kombu's consume loop, events or not.
        receiver.on_iteration = lambda: setattr(receiver, "should_stop", stop.is_set())
        receiver.capture(limit=None, timeout=None, wakeup=True)


def durable_queue_name(instance):
    """The panel's own event queue: named per instance, so a restarted panel finds what was sent meanwhile."""
    import hashlib
    return "ccp.events." + hashlib.sha1(str(instance).encode()).hexdigest()[:12]


def capture_durable(celery, name, on_event, stop, *, routing_key="task.#", max_length, max_age_s, expires_s,
                    on_idle=None):
    """Consume task events from a named queue that outlives the panel, bounded in length and age.

    On RabbitMQ the bounds are queue arguments (x-max-length, x-message-ttl, x-expires: a panel gone for
    good leaves nothing behind). On Redis, Celery sends events by PUB/SUB (its event exchange is fanout
    there): nothing waits for a panel that is away, so there is nothing to bound either.
    on_idle() is called at least once a second, events or not.
    """
    with celery.connection_for_read() as conn:
        receiver = celery.events.Receiver(conn, handlers={"*": on_event}, routing_key=routing_key,
                                          node_id=name.split(".", 2)[-1], queue_prefix=name.rsplit(".", 1)[0],
                                          queue_durable=True, queue_exclusive=False, queue_ttl=max_age_s,
                                          queue_expires=expires_s)
        receiver.queue.max_length = max_length
        receiver.connect_max_retries = 1

        def iteration():
            receiver.should_stop = stop.is_set()
            if on_idle is not None:
                on_idle()
        receiver.on_iteration = iteration
        receiver.capture(limit=None, timeout=None, wakeup=False)

