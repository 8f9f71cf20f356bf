"""The project's Celery app, configured the way a project does it: from its own settings and environment."""
import os
import time

from celery import Celery

app = Celery("proj", broker=os.environ.get("CELERY_BROKER_URL"), backend=os.environ.get("CELERY_RESULT_BACKEND"))
app.conf.update(
    task_track_started=True,
    beat_schedule={"tick": {"task": "proj.tick", "schedule": float(os.environ.get("PROJ_TICK_S", "1"))}},
)


@app.task(name="proj.tick")
def tick():
    return "tick"


@app.task(name="proj.add")
def add(x, y):
    return x + y


@app.task(name="proj.fail")
def fail(message):
    raise ValueError(message)


@app.task(name="proj.slow")
def slow(seconds):
    time.sleep(seconds)
    return seconds


@app.task(name="proj.flaky", bind=True, max_retries=2)
def flaky(self):
    """Fails every attempt: two retries, then the failure."""
    raise self.retry(exc=RuntimeError("upstream is down"), countdown=0.2)
