"""Tasks used only by the tests, imported by test workers through CELERY_IMPORTS."""
import signal
import time

from celery import shared_task


@shared_task(name="tests.add")
def add(x, y):
    return x + y


@shared_task(name="tests.writes_behind")
def writes_behind():
    """Whether the pool process running it commits its run changes behind its tasks (panel/run_writer.py)."""
    from panel.runlog import recorder
    return recorder._writer is not None


@shared_task(name="tests.sleep_ignoring_term")
def sleep_ignoring_term(seconds):
    """Stands for a task stuck in a C call: it does not react to SIGTERM."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(seconds)
    return seconds


@shared_task(name="tests.sleep")
def sleep(seconds):
    time.sleep(seconds)
    return seconds


@shared_task(name="tests.always_fails", bind=True, max_retries=50)
def always_fails(self, countdown=1.0):
    """A task stuck in a retry loop."""
    raise self.retry(exc=RuntimeError("upstream is down"), countdown=countdown)


@shared_task(name="tests.echo with space")
def echo_with_space(**kwargs):
    """A task type whose name holds a space, as Celery allows any string."""
    return sorted(kwargs)
