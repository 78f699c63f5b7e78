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


def active_integration_ids(ids: set[int]) -> set[int]:
    from apps.vendors.models import Integration

    return set(Integration.objects.filter(pk__in=ids, status="active").values_list("pk", flat=True))


def dashboard_summary() -> dict:
    """The counts at the top of the dashboard, each a link to its queue."""
    from apps.governance.models import ScopeRequest
    from apps.roster.models import ImportRun, ImportState

    now = timezone.now()
    return {
        "alerts": open_alert_counts(),
        "pending_approvals": ScopeRequest.objects.pending().count(),
        "expiring_approvals": ScopeRequest.objects.live(now)
        .filter(expires_at__lte=now + dt.timedelta(days=30)).count(),
        "held_imports": ImportRun.objects.filter(state=ImportState.HELD).count(),
        # counts only: who is excluded is for safeguarding officers alone
        "exclusions_ending": _exclusions_ending(now),
        "latest_imports": list(
            ImportRun.objects.select_related("source").order_by("-received_at")[:5]
        ),
        "latest_deliveries": _latest_deliveries(),
    }


def _exclusions_ending(now: dt.datetime, days: int = 14) -> int:
    from apps.governance.models import Exclusion

    return Exclusion.objects.active(now).filter(ends_at__lte=now + dt.timedelta(days=days)).count()


def _latest_deliveries(limit: int = 5) -> list[dict]:
    from apps.audit.models import AccessRecord, Channel

    rows = list(
        AccessRecord.objects.filter(channel=Channel.ONEROSTER_CSV)
        .order_by("-occurred_at")
        .values("occurred_at", "integration_id", "endpoint", "status_code", "records")[:limit]
    )
    names = _names({r["integration_id"] for r in rows if r["integration_id"]})
    for row in rows:
        row["integration"] = names.get(row["integration_id"], "—")
    return rows


def _names(ids: set[int]) -> dict[int, str]:
    from apps.vendors.models import Integration

    return dict(Integration.objects.filter(pk__in=ids).values_list("pk", "name"))


def role_distribution(telemetry: RosterVersionTelemetry | None) -> list[tuple[str, int]]:
    """Users per role in a version, largest first (summed over orgs)."""
    if telemetry is None:
        return []
    from django.db.models import Sum

    rows = (
        telemetry.counts.filter(kind="users_by_org_role").values("role")
        .annotate(n=Sum("count")).order_by("-n", "role")
    )
    return [(row["role"], int(row["n"])) for row in rows]


ACTIVITY_MEASURES = (
    ("requests", "Requests"), ("records", "Records served"),
    ("users_disclosed", "Pupils disclosed"), ("token_failures", "Refused tokens"),
    ("launches", "LTI launches"), ("nrps_calls", "Names and Roles calls"),
    ("score_posts", "Scores posted"), ("deliveries", "Deliveries"),
)


def integration_daily(integration_id: int, *, days: int = 90,
                      today: dt.date | None = None) -> dict[str, list[tuple[str, int]]]:
    """Per measure, (day label, value) for each of the last ``days`` days, zeros filled; a
    measure that never moved is left out."""
    today = today or timezone.localdate()
    start = today - dt.timedelta(days=days - 1)
    rows = {
        row["day"]: row
        for row in IntegrationActivity.objects.filter(
            integration_id=integration_id, day__gte=start, day__lte=today
        ).values("day", *(m for m, _ in ACTIVITY_MEASURES))
    }
    # start at the first day with activity (a new integration's chart is not mostly zeros)
    first = min(rows, default=today)
    start = min(max(start, first), today - dt.timedelta(days=13))
    span = [start + dt.timedelta(days=n) for n in range((today - start).days + 1)]
    out = {}
    for measure, _label in ACTIVITY_MEASURES:
        values = [(f"{d:%d %b}", int(rows.get(d, {}).get(measure, 0))) for d in span]
        if any(v for _, v in values):
            out[measure] = values
    return out


def integration_hours(integration_id: int, *, days: int = 14,
                      now: dt.datetime | None = None) -> list[tuple[str, int]]:
    """Requests per hour of day over the last ``days`` days (the integration's rhythm)."""
    from django.db.models import Sum
    from django.db.models.functions import ExtractHour

    from apps.audit.models import AccessHourly

    since = (now or timezone.now()) - dt.timedelta(days=days)
    counts = dict(
        AccessHourly.objects.filter(integration_id=integration_id, hour__gte=since)
        .annotate(hod=ExtractHour("hour")).values("hod").annotate(n=Sum("requests"))
        .values_list("hod", "n")
    )
    return [(f"{h:02d}", int(counts.get(h, 0))) for h in range(24)]


def integration_recent_access(integration_id: int, *, limit: int = 20) -> list[dict]:
    from apps.audit.models import AccessRecord

    return list(
        AccessRecord.objects.filter(integration_id=integration_id).order_by("-occurred_at")
        .values("occurred_at", "channel", "endpoint", "status_code", "records",
                "duration_ms")[:limit]
    )


def integration_alerts(integration_id: int) -> list[Alert]:
    """Live alerts whose details name this integration."""
    from apps.alerts.alerts import open_alerts

    return list(open_alerts().filter(details__integration_id=integration_id)[:50])


@dataclass(frozen=True)
class Propagation:
    version: int
    applied_at: dt.datetime
    integration_id: int
    destination: str
    delivered_at: dt.datetime | None
    minutes: float | None
    target_minutes: float
    state: str  # met | breached | pending | late (pending past the target)


def propagation_target_hours() -> float:
    """The service level is the delivery-lag rule's threshold, so one figure is tuned."""
    from apps.monitoring.models import MonitoringRule, RuleKey
    from apps.monitoring.rules import DEFAULTS

    value = MonitoringRule.objects.filter(key=RuleKey.DELIVERY_LAG).values_list(
        "threshold", flat=True
    ).first()
    return float(value if value is not None else DEFAULTS[RuleKey.DELIVERY_LAG]["threshold"])


def service_levels(*, versions: int = 5, now: dt.datetime | None = None) -> list[Propagation]:
    """Propagation time from each of the newest roster versions to each live CSV destination,
    against the target. (REST reads the current version at request time: visible at commit.)"""
    now = now or timezone.now()
    target = propagation_target_hours() * 60
    with connection.cursor() as cursor:
        cursor.execute(sql.PROPAGATION, {"versions": versions})
        rows = cursor.fetchall()
    out = []
    for number, applied_at, iid, name, delivered_at in rows:
        if delivered_at is not None:
            minutes = (delivered_at - applied_at).total_seconds() / 60
            state = "met" if minutes <= target else "breached"
        else:
            minutes = None
            waited = (now - applied_at).total_seconds() / 60
            state = "late" if waited > target else "pending"
        out.append(Propagation(number, applied_at, iid, name, delivered_at, minutes, target,
                               state))
    return out
