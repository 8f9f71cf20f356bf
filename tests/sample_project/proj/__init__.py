"""A user's own Celery project, for the tests: the panel runs its worker and Beat but never imports it."""
