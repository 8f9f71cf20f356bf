"""The run log: every run's row from send to end, kept true (capture, writer, spool, reconciler, search)."""
