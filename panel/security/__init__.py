"""Who may do what: sessions and tokens, roles per route, CSRF, the audit log."""
