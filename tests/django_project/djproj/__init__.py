"""A tiny Django project that keeps its Celery results with django-celery-results, as many projects do."""
from djproj.celery import app as celery_app

__all__ = ("celery_app",)
