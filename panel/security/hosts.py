"""With PANEL_AUTH=off, only requests that name this machine are served.

DNS rebinding: a page on evil.example whose name later resolves to 127.0.0.1 is same-origin with itself, so the
browser lets it read the panel's answers, with admin rights when login is off. Its requests still say
`Host: evil.example`: that is what is checked. The port is not: an attacker's page cannot make a browser send a
loopback name, whatever the port, and a tunnel (`ssh -L 8080:127.0.0.1:5000`) sends `localhost:8080`.
"""
from flask import request

from panel.errors import HostRefused

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def name_of(host):
    """The host name of a Host header or a setting, lower case, without port or IPv6 brackets."""
    host = (host or "").strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    if host.count(":") == 1:  # name:port (a bare IPv6 address has more colons)
        return host.split(":")[0]
    return host


def allowed_names(cfg):
    """The loopback names, the address the panel serves on, and PANEL_ALLOWED_HOSTS (comma-separated)."""
    extra = [part for part in str(cfg.get("PANEL_ALLOWED_HOSTS") or "").split(",") if part.strip()]
    return frozenset(name_of(h) for h in (*LOOPBACK_NAMES, cfg.get("PANEL_HOST", ""), *extra) if name_of(h))


def refusal(host, allowed):
    shown = ", ".join(sorted(f"[{n}]" if ":" in n else n for n in allowed))
    return (f"This panel runs with PANEL_AUTH=off and answers only to the host names {shown}; this request was "
            f"for {host[:200]!r}. Open it by one of those names, or add the name to PANEL_ALLOWED_HOSTS.")


def guard(app):
    """Put the Host check before every other check of every request (pages, API, static files, 404s)."""
    allowed = allowed_names(app.config)

    def check_host():
        host = request.host
        if name_of(host) in allowed:
            return None
        raise HostRefused(refusal(host, allowed))

    app.before_request_funcs.setdefault(None, []).insert(0, check_host)
