"""A remote control command of our own, registered in every process of the embedded app (Celery's public API).

The worker detail asks for six inspect parts; one command answers them all in one round trip, where six
`inspect()` calls would each pay their own (a worker serves its mailbox one message at a time).
"""
from celery.worker import control

DETAIL = "panel_detail"


@control.inspect_command(name=DETAIL, signature="[taskinfoitems...]", variadic="taskinfoitems")
def panel_detail(state, taskinfoitems=None, **kwargs):
    """The panel's worker detail in one reply: stats, active, reserved, scheduled, registered, active_queues."""
    return {"stats": control.stats(state), "active": control.active(state), "reserved": control.reserved(state),
            "scheduled": control.scheduled(state), "registered": control.registered(state, taskinfoitems),
            "active_queues": control.active_queues(state)}
