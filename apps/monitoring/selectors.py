"""Reads of the monitoring app that carry rules: dashboard series, lags and counts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import connection
from django.db.models import Count
from django.utils import timezone

from apps.alerts.models import Alert, AlertState, Severity
from apps.monitoring import sql
from apps.monitoring.models import IntegrationActivity, RosterVersionTelemetry

SPARKLINE_DAYS = 30


def delivery_lags(now: dt.datetime | None = None) -> dict[str, float]:
    """Seconds each live CSV destination is behind the newest roster version (0: delivered)."""
    from apps.roster.models import RosterVersion

    now = now or timezone.now()
    newest = RosterVersion.objects.order_by("-number").values_list("created_at", flat=True).first()
    with connection.cursor() as cursor:
        cursor.execute(sql.DELIVERY_STATE, {"since": now - dt.timedelta(hours=24)})
        rows = cursor.fetchall()
    lags = {}
    for _iid, name, last_ok, last_ok_hour, _failures in rows:
        last = last_ok or last_ok_hour
        behind = newest is not None and (last is None or last < newest)
        lags[name] = (now - newest).total_seconds() if behind else 0.0
    return lags


def token_failures_last_hour(now: dt.datetime | None = None) -> int:
    from apps.audit.models import AccessRecord

    since = (now or timezone.now()) - dt.timedelta(hours=1)
    return AccessRecord.objects.filter(
        occurred_at__gte=since, endpoint__endswith="/token", status_code__gte=400
    ).count()


def open_alert_counts() -> dict[str, int]:
    counts = dict(
        Alert.objects.exclude(state=AlertState.RESOLVED)
        .values_list("severity").annotate(n=Count("id")).values_list("severity", "n")
    )
    return {severity: counts.get(severity, 0) for severity in Severity.values}


@dataclass(frozen=True)
class IntegrationSeries:
    integration_id: int
    name: str
    status: str
    days: list[dt.date]
    requests: list[int]
    records: list[int]
    users: list[int]
    errors: int
    last_day: dt.date | None


def activity_series(*, days: int = SPARKLINE_DAYS, today: dt.date | None = None
                    ) -> list[IntegrationSeries]:
    """Per integration, a value per day (zeros filled) for the dashboard's sparklines."""
    from apps.vendors.models import Integration

    today = today or timezone.localdate()
    start = today - dt.timedelta(days=days - 1)
    span = [start + dt.timedelta(days=n) for n in range(days)]
    rows = IntegrationActivity.objects.filter(
        day__gte=start, day__lte=today, integration_id__isnull=False
    ).values_list("integration_id", "day", "requests", "records", "users_disclosed", "errors")
    by_integration: dict[int, dict[dt.date, tuple]] = {}
    for iid, day, requests, records, users, errors in rows:
        by_integration.setdefault(iid, {})[day] = (requests, records, users, errors)
    integrations = Integration.objects.exclude(status="offboarded").order_by("name").values_list(
        "pk", "name", "status"
    )
    series = []
    for pk, name, status in integrations:
        values = by_integration.get(pk, {})
        active = [day for day in span if values.get(day, (0,))[0]]
        series.append(IntegrationSeries(
            integration_id=pk, name=name, status=status, days=span,
            requests=[values.get(d, (0, 0, 0, 0))[0] for d in span],
            records=[values.get(d, (0, 0, 0, 0))[1] for d in span],
            users=[values.get(d, (0, 0, 0, 0))[2] for d in span],
            errors=sum(v[3] for v in values.values()),
            last_day=active[-1] if active else None,
        ))
    return series


def roster_series(*, versions: int = 30) -> list[RosterVersionTelemetry]:
    """The newest versions' telemetry, oldest first (for the roster chart)."""
    return list(reversed(RosterVersionTelemetry.objects.order_by("-number")[:versions]))
