"""Prometheus metrics, correct under several gunicorn workers.

With ``PROMETHEUS_MULTIPROC_DIR`` set (the gunicorn config does), each worker
writes its samples to that directory and ``/metrics`` aggregates them.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

HTTP_REQUEST_SECONDS = Histogram(
    "interchange_http_request_seconds", "Request latency by route", ["method", "route"]
)
HTTP_RESPONSES = Counter(
    "interchange_http_responses_total",
    "Responses by route and status",
    ["method", "route", "status"],
)
TOKEN_FAILURES = Counter(
    "interchange_token_failures_total", "Refused token requests", ["channel", "error"]
)
JOB_SECONDS = Histogram("interchange_job_seconds", "Celery job duration", ["task"])
JOB_FAILURES = Counter(
    "interchange_job_failures_total", "Celery jobs that did not succeed", ["task"]
)


# Called before each exposition, so gauges that describe the hub (queue depth, delivery lag)
# are read at scrape time by the worker that serves it (see apps/monitoring/metrics.py).
_SCRAPE_HOOKS: list[Callable[[], None]] = []


def add_scrape_hook(hook: Callable[[], None]) -> None:
    if hook not in _SCRAPE_HOOKS:
        _SCRAPE_HOOKS.append(hook)


def exposition() -> tuple[bytes, str]:
    """The text exposition of every metric, merged across processes when multiprocess."""
    for hook in _SCRAPE_HOOKS:
        hook()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
