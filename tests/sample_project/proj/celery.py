"""The project's Celery app, configured the way a project does it: from its own settings and environment."""
import os
import time

from celery import Celery

# PROJ_BROKER_URL: a broker of the project's own, not the one the panel hands its worker.
app = Celery("proj", broker=os.environ.get("PROJ_BROKER_URL") or os.environ.get("CELERY_BROKER_URL"),
             backend=os.environ.get("CELERY_RESULT_BACKEND"))
app.conf.update(
    task_track_started=os.environ.get("PROJ_TRACK_STARTED", "1") == "1",  # PROJ_TRACK_STARTED=0: never STARTED
    # PROJ_IGNORE_RESULT=1 runs it as many projects do: no result stored (and so no extended result either).
    task_ignore_result=os.environ.get("PROJ_IGNORE_RESULT") == "1",
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


@app.task(name="proj.progress", bind=True)
def progress(self, steps, pause=0.5):
    """Reports a custom PROGRESS state with its meta at every step, as long tasks do."""
    for done in range(steps):
        self.update_state(state="PROGRESS", meta={"done": done, "total": steps})
        time.sleep(pause)
    return steps
