"""Internals of the Celery Control Panel: one module per noun."""
