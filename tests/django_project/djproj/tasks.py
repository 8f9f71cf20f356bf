"""The project's tasks."""
from celery import shared_task


@shared_task(name="djproj.add")
def add(x, y):
    return x + y


@shared_task(name="djproj.fail")
def fail(message):
    raise ValueError(message)


@shared_task(name="djproj.echo")
def echo(value, label="none"):
    return {"value": value, "label": label}
