"""Celery remote control and inspect: every call addressed (a destination) or bounded (a limit), with a timeout."""
import socket
import time

from kombu import Consumer
from kombu.utils.uuid import uuid


def ping_worker(celery, nodename, timeout_s=1.0):
    """True when the named worker answers a ping addressed to it alone."""
    replies = celery.control.ping(destination=[nodename], timeout=timeout_s, limit=1) or []
    return any(nodename in reply for reply in replies)


def active_ids(celery, worker, timeout_s=1.0):
    """Task ids the named worker is executing now, or None when it did not answer."""
    replies = celery.control.inspect(destination=[worker], timeout=timeout_s, limit=1).active() or {}
    if worker not in replies:
        return None
    return {task["id"] for task in replies[worker] or []}


def revoke(celery, task_ids, terminate=False, sig="SIGTERM", worker=None, timeout_s=1.0):
    """Revoke runs; addressed to one worker (with its reply) or broadcast to all without waiting."""
    if worker:
        replies = celery.control.revoke(task_ids, terminate=terminate, signal=sig, destination=[worker],
                                        reply=True, timeout=timeout_s, limit=1) or []
        return any(worker in reply for reply in replies)
    celery.control.revoke(task_ids, terminate=terminate, signal=sig)
    return True


NO_REPLY = object()


def executing_pid(celery, worker, task_id, timeout_s=1.0):
    """The pool process running task_id on worker; None when it runs no more, NO_REPLY when silent."""
    replies = celery.control.inspect(destination=[worker], timeout=timeout_s, limit=1).active() or {}
    if worker not in replies:
        return NO_REPLY
    for task in replies[worker] or []:
        if task.get("id") == task_id:
            return task.get("worker_pid")
    return None


def pool_pids(celery, worker, timeout_s=1.0):
    """The worker's pool processes as it reports them (works for remote workers), or None."""
    replies = celery.control.inspect(destination=[worker], timeout=timeout_s, limit=1).stats() or {}
    if worker not in replies:
        return None
    return set(replies[worker].get("pool", {}).get("processes") or [])


def command(celery, names, name_of_command, arguments=None, timeout_s=2.0):
    """A control command to these workers only; {worker: its reply} for those that answered in time."""
    replies = celery.control.broadcast(name_of_command, arguments=arguments or {}, destination=list(names),
                                       reply=True, timeout=timeout_s, limit=len(names)) or []
    return {worker: reply for answer in replies for worker, reply in answer.items() if worker in names}


def shutdown(celery, worker):
    """Warm shutdown of one worker (it never replies: it is gone)."""
    celery.control.broadcast("shutdown", destination=[worker])


def inspect_at_once(celery, worker, calls, timeout_s=1.0):
    """{part: reply} of several inspect calls to one worker, all published before any reply is read.

    The worker answers them back to back, so this costs about one round trip instead of one per call;
    a part without a reply in time is missing from the answer.
    """
    with celery.connection_or_acquire() as conn:
        mailbox = celery.control.mailbox(conn)
        tickets = {}
        for part, (method, arguments) in calls.items():
            ticket = uuid()
            # kombu has no public call that publishes without waiting for the replies: _publish it is.
            mailbox._publish(method, arguments, destination=[worker], reply_ticket=ticket,
                             channel=conn.default_channel, timeout=timeout_s)
            tickets[ticket] = part
        return _collect(conn, mailbox, tickets, worker, timeout_s)


def _collect(conn, mailbox, tickets, worker, timeout_s):
    """Replies to our tickets from the reply queue until each has one or the timeout passes."""
    got = {}

    def on_message(body, message):
        part = tickets.get(message.headers.get("ticket"))
        if part and isinstance(body, dict) and worker in body:
            got[part] = body[worker]
    deadline = time.monotonic() + timeout_s
    with Consumer(conn.default_channel, [mailbox.reply_queue], accept=mailbox.accept, no_ack=True,
                  callbacks=[on_message]):
        while len(got) < len(tickets) and (left := deadline - time.monotonic()) > 0:
            try:
                conn.drain_events(timeout=left)
            except socket.timeout:
                break
    conn.default_channel.after_reply_message_received(mailbox.reply_queue.name)
    return got
