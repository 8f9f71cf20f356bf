"""This host's Celery processes: the process table, the OS seam, the supervisor, states, watchdog, history."""
