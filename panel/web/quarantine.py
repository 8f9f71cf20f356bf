"""The quarantine: messages a worker died on again and again, taken out of their queue
(panel/supervision/quarantine.py)."""
import logging

from flask import current_app, jsonify

from panel.supervision import quarantine
from panel.web.contract import api
from panel.web.schemas.quarantine import KeptMessage, Quarantine, Released

log = logging.getLogger("panel.control")


@api(Quarantine)
def list_quarantine():
    """Every quarantined message, newest first: why it was taken out (the worker's last words) and how often."""
    return jsonify({"messages": [quarantine.as_dict(row) for row in quarantine.kept()]})


@api(KeptMessage, 404)
def quarantined_message(celery_task_id):
    """One quarantined message with its args and kwargs (cut to a readable length) and its Celery headers."""
    return jsonify(quarantine.as_dict(quarantine.get(celery_task_id), content=True))


@api(Released, 404)
def delete_quarantined(celery_task_id):
    """Drop a quarantined message for good; its run stays failed."""
    row = quarantine.delete(celery_task_id)
    log.info("quarantined message %s (%s) deleted", row.celery_task_id, row.task_name)
    return jsonify({"status": "success", "celery_task_id": row.celery_task_id,
                    "message": f"Message {row.celery_task_id} ({row.task_name}) deleted from the quarantine"})


@api(Released, 404, 409)
def requeue_quarantined(celery_task_id):
    """Publish the message again to its queue, as it was; its run is queued again."""
    row = quarantine.requeue(current_app.extensions["celery"], celery_task_id)
    log.info("quarantined message %s (%s) requeued to %s", row.celery_task_id, row.task_name, row.queue)
    return jsonify({"status": "success", "celery_task_id": row.celery_task_id,
                    "message": f"Message {row.celery_task_id} ({row.task_name}) requeued to {row.queue}"})
