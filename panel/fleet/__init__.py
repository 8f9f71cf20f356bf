"""Several hosts in one pane: each host's own supervisord, asked in parallel, each failing alone."""
