"""Monitoring's Prometheus metrics, correct under several gunicorn workers.

Counters are summed across processes by prometheus_client's multiprocess mode. Gauges that
describe the hub rather than a process (queue depth, delivery lag, open alerts) are
refreshed at scrape time by whichever worker serves ``/metrics`` and exported with
``mostrecent``, so several workers never add their copies together.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from prometheus_client import Counter, Gauge

logger = logging.getLogger(__name__)

CELERY_QUEUE = "celery"
# A scrape refreshes the hub gauges at most this often per process.
REFRESH_SECONDS = 10.0

QUEUE_DEPTH = Gauge(
    "interchange_queue_depth", "Messages waiting in the Celery queue (Redis LLEN)", ["queue"],
    multiprocess_mode="mostrecent",
)
DELIVERY_LAG = Gauge(
    "interchange_delivery_lag_seconds",
    "Seconds the newest roster version has waited for a CSV destination (0 when delivered)",
    ["integration"], multiprocess_mode="mostrecent",
)
TOKEN_FAILURES_LAST_HOUR = Gauge(
    "interchange_token_failures_last_hour", "Refused token requests in the last hour",
    multiprocess_mode="mostrecent",
)
OPEN_ALERTS = Gauge(
    "interchange_open_alerts", "Alerts not yet resolved", ["severity"],
    multiprocess_mode="mostrecent",
)
ALERTS_RAISED = Counter(
    "interchange_monitoring_alerts_raised_total", "Alerts raised by monitoring rules", ["rule"]
)
RULE_FAILURES = Counter(
    "interchange_monitoring_rule_failures_total", "Monitoring rules that failed to run", ["rule"]
)
NOTIFICATIONS = Counter(
    "interchange_alert_notifications_total", "Alert notifications by channel kind and outcome",
    ["kind", "outcome"],
)

_last_refresh = 0.0


def queue_depth(queue: str = CELERY_QUEUE) -> int | None:
    """LLEN of the Celery queue on the Redis broker; None without Redis."""
    url = getattr(settings, "REDIS_URL", None)
    if not url:
        return None
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        return int(client.llen(queue))
    finally:
        client.close()


def _refresh_queue() -> None:
    depth = queue_depth()
    if depth is not None:
        QUEUE_DEPTH.labels(CELERY_QUEUE).set(depth)


def _refresh_database() -> None:
    from apps.monitoring import selectors

    for name, seconds in selectors.delivery_lags().items():
        DELIVERY_LAG.labels(name).set(seconds)
    TOKEN_FAILURES_LAST_HOUR.set(selectors.token_failures_last_hour())
    for severity, count in selectors.open_alert_counts().items():
        OPEN_ALERTS.labels(severity).set(count)


def hub_gauges_refresh() -> None:
    """Set the hub gauges from Redis and the database (a few cheap statements); either may be
    down without the other going stale, and a scrape always answers."""
    for part in (_refresh_queue, _refresh_database):
        try:
            part()
        except Exception:  # noqa: BLE001 - a scrape must answer even when a backend is down
            logger.warning("monitoring gauges: %s failed", part.__name__, exc_info=True)


def _on_scrape() -> None:
    global _last_refresh
    if time.monotonic() - _last_refresh < REFRESH_SECONDS:
        return
    _last_refresh = time.monotonic()
    hub_gauges_refresh()


def register_scrape_hook() -> None:
    from portal import metrics as portal_metrics

    add = getattr(portal_metrics, "add_scrape_hook", None)
    if add is not None:
        add(_on_scrape)
