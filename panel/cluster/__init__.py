"""The cluster as Celery's events and replies describe it: workers and the task types they register."""
