"""Is everything alive: the health view, Prometheus metrics, alerts."""
