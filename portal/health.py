"""Liveness, readiness, the worker heartbeat and the metrics endpoint."""

from __future__ import annotations

import hmac
import ipaddress
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from portal import metrics

WORKER_HEARTBEAT_CACHE_KEY = "ops:worker-heartbeat"
REDIS_TIMEOUT_SECONDS = 2
# A request that came through a reverse proxy is not "from loopback", whatever its peer address.
_PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


def worker_heartbeat_record(*, at: datetime | None = None) -> datetime:
    """Note that a worker just ran a scheduled job (called by the ``ops.heartbeat`` task)."""
    at = at or timezone.now()
    cache.set(WORKER_HEARTBEAT_CACHE_KEY, at.isoformat(), timeout=None)
    return at


def worker_heartbeat_last() -> datetime | None:
    """When a worker last ran ``ops.heartbeat``; None if never (or the cache was flushed)."""
    value = cache.get(WORKER_HEARTBEAT_CACHE_KEY)
    return datetime.fromisoformat(value) if value else None


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Deliberately touches nothing else."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: the database answers, and Redis when one is configured.

    With Redis configured a worker is expected, so the age of its last heartbeat is reported
    too. It is information, not a check: a web process can serve while the workers are down,
    and taking it out of the load balancer would not bring them back.
    """
    checks: dict[str, str] = {}
    body: dict[str, object] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["database"] = f"error: {exc.__class__.__name__}"
    if settings.REDIS_URL:
        import redis

        try:
            redis.Redis.from_url(
                settings.REDIS_URL,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            ).ping()
            checks["redis"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["redis"] = f"error: {exc.__class__.__name__}"
        if checks["redis"] == "ok":
            last = worker_heartbeat_last()
            body["worker"] = {
                "last_heartbeat": last.isoformat() if last else None,
                "age_seconds": round((timezone.now() - last).total_seconds()) if last else None,
            }
    ready = all(value == "ok" for value in checks.values())
    body = {"status": "ok" if ready else "unavailable", "checks": checks, **body}
    return JsonResponse(body, status=200 if ready else 503)


def _metrics_allowed(request: HttpRequest) -> bool:
    """With a token, only its bearer; without one, only a direct (unproxied) loopback peer."""
    token = settings.INTERCHANGE_METRICS_TOKEN
    if token:
        supplied = request.headers.get("Authorization", "")
        return hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode())
    if any(request.META.get(header) for header in _PROXY_HEADERS):
        return False
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _metrics_allowed(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    body, content_type = metrics.exposition()
    return HttpResponse(body, content_type=content_type)
