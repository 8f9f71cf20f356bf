"""Built-in tasks: thin wrappers over plain functions."""
import re
import time

import requests
from celery import shared_task

MAX_BODY_BYTES = 2 * 1024 * 1024
TITLE_RE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
RETRYABLE = (requests.ConnectionError, requests.Timeout)


def fetch(url, timeout_s):
    """GET url and describe the answer; any HTTP status is a result, not an error."""
    started = time.perf_counter()
    with requests.get(url, timeout=timeout_s, stream=True, headers={"User-Agent": "celery-panel-crawler"}) as resp:
        body = b""
        for chunk in resp.iter_content(64 * 1024):
            body += chunk
            if len(body) >= MAX_BODY_BYTES:
                break
        match = TITLE_RE.search(body)
        return {
            "url": url,
            "status_code": resp.status_code,
            "ok": resp.ok,
            "size": len(body),
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
            "title": match.group(1).decode("utf-8", "replace").strip()[:300] if match else None,
        }


@shared_task(bind=True, name="crawl_url")
def crawl_url(self, url, timeout=10, max_retries=5, backoff_s=2.0, backoff_max_s=300.0):
    """Fetch a URL; network errors retry with exponential backoff, HTTP errors are results."""
    try:
        return fetch(url, timeout)
    except RETRYABLE as exc:
        countdown = min(backoff_s * (2 ** self.request.retries), backoff_max_s)
        raise self.retry(exc=exc, countdown=countdown, max_retries=max_retries)


@shared_task(name="cleanup_results")
def cleanup_results(days=30, include_failures=False):
    """The retention clean-up as a task Beat can schedule: old successful runs go, failures stay."""
    from panel.runlog import retention
    return retention.cleanup(days=days, include_failures=include_failures)
