"""Publishing a task: a send that answers at once when the broker is away."""
from panel.errors import BrokerDown

SEND_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


def send(celery, task_name, args, kwargs, headers=None, queue=None, **options):
    """Send a task (`options`: Celery's eta, expires, priority); BrokerDown at once when the broker does not answer."""
    if queue:
        options["queue"] = queue
    try:
        return celery.send_task(task_name, args=args, kwargs=kwargs, headers=headers or {},
                                retry=True, retry_policy=SEND_RETRY, **options)
    except Exception as exc:  # kombu raises the transport's own errors
        raise BrokerDown(f"could not send {task_name}: {exc}") from exc
