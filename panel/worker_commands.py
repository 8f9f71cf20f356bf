"""Remote control commands and a start-up hook of our own, registered in every process of the embedded app.

The worker detail asks for six inspect parts; one command answers them all in one round trip, where six
`inspect()` calls would each pay their own (a worker serves its mailbox one message at a time).

A queue paused through the panel must not be consumed by a worker that starts while it is paused, not even
for the moment before the panel tells it so: the embedded app's worker reads the pauses before it consumes.
"""
import logging

from celery import signals
from celery.worker import control

from panel.broker.remote import DETAIL, RESUME
from panel.cluster import paused

log = logging.getLogger("panel.worker")
HELD_BACK = set()  # paused queues this worker was started to consume and skipped


@control.inspect_command(name=DETAIL, signature="[taskinfoitems...]", variadic="taskinfoitems")
def panel_detail(state, taskinfoitems=None, **kwargs):
    """The panel's worker detail in one reply: stats, active, reserved, scheduled, registered, active_queues."""
    return {"stats": control.stats(state), "active": control.active(state), "reserved": control.reserved(state),
            "scheduled": control.scheduled(state), "registered": control.registered(state, taskinfoitems),
            "active_queues": control.active_queues(state)}


@control.control_command(name=RESUME, args=[("queue", str)], signature="<queue>")
def panel_resume_queue(state, queue, **kwargs):
    """Consume a queue this worker skipped at start because it was paused (a no-op for any other queue)."""
    if queue not in HELD_BACK:
        return {"ok": f"{queue} was not held back here"}
    HELD_BACK.discard(queue)
    return dict(control.add_consumer(state, queue), resumed=True)


@signals.celeryd_after_setup.connect
def skip_paused_queues(sender=None, instance=None, **_):
    """After -Q is applied and before consuming: leave out every queue the panel has paused."""
    flask_app = getattr(instance.app, "flask_app", None)
    if flask_app is None:
        return
    try:
        with flask_app.app_context():
            names = paused.names()
    except Exception as exc:  # the database away: consume as started; the panel re-applies pauses when it sees us
        log.warning("could not read the paused queues (%s); consuming every queue given", exc)
        return
    held = sorted(set(instance.app.amqp.queues.consume_from) & names)
    if held:
        instance.app.amqp.queues.deselect(held)
        HELD_BACK.update(held)
        log.warning("not consuming %s: paused through the panel (resume it there)", ", ".join(held))
