"""Demo history for the monitoring dashboard (sandbox only, called by ``seed_demo``).

A fresh sandbox has one roster version and no traffic, so the dashboard would be blank.
This writes four weeks of synthetic access history into the base layer's hourly
aggregate, shaped as the channels leave it (nightly REST syncs, school-hour LTI launches,
grade passback, nightly CSV deliveries), plus today's anomalies (an off-hours bulk pull and
a burst of refused tokens), then runs the telemetry and the rules so the first visit shows
activity, baselines and alerts. Re-running it adds nothing for hours already written.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from django.utils import timezone

from apps.audit.models import AccessHourly, AccessRecord, Channel
from apps.monitoring import services
from apps.monitoring.models import AlertChannel, ChannelKind
from apps.vendors.models import Integration, IntegrationKind

HISTORY_DAYS = 28
DEMO_SEED = 2026
DEMO_CHANNEL = "Governance inbox (demo)"
REST_USERS = "/ims/oneroster/rostering/v1p2/users"
GUESSING_CLIENT = "demo-client-guessing"


def _hourly(rows: list[AccessHourly], integration_id: int, channel: str, endpoint: str,
            hour: dt.datetime, requests: int, records: int, errors: int = 0) -> None:
    rows.append(AccessHourly(
        integration_id=integration_id, channel=channel, endpoint=endpoint, hour=hour,
        requests=requests, errors=errors, records=records,
        duration_ms_total=requests * 35, duration_ms_max=120,
    ))


def _history(integration: Integration, day: dt.datetime, rng: random.Random,
             rows: list[AccessHourly], *, students: int) -> None:
    weekday = day.weekday() < 5
    at = lambda h: day.replace(hour=h)  # noqa: E731
    if integration.kind == IntegrationKind.ONEROSTER_REST:
        _hourly(rows, integration.pk, Channel.ONEROSTER_REST, "/oauth/token", at(2), 1, 0)
        _hourly(rows, integration.pk, Channel.ONEROSTER_REST, REST_USERS, at(2),
                rng.randint(10, 14), int(students * rng.uniform(1.1, 1.3)))
    elif integration.kind == IntegrationKind.LTI_TOOL and weekday:
        for h in range(9, 16):
            _hourly(rows, integration.pk, Channel.LTI_LAUNCH, "/lti/auth", at(h),
                    rng.randint(15, 60), rng.randint(15, 60))
        _hourly(rows, integration.pk, Channel.LTI_NRPS, "/lti/contexts/{id}/memberships",
                at(10), rng.randint(2, 6), rng.randint(60, 180))
        _hourly(rows, integration.pk, Channel.LTI_AGS, "/lti/ags/{context}/lineitems/{item}/scores",
                at(14), rng.randint(25, 45), rng.randint(25, 45))
    elif integration.kind == IntegrationKind.ONEROSTER_CSV:
        _hourly(rows, integration.pk, Channel.ONEROSTER_CSV, "delivery:sftp", at(1), 1,
                int(students * 4.5))


def demo_monitoring_seed(*, integrations: dict[str, Integration], students: int,
                         now: dt.datetime | None = None) -> dict[str, Any]:
    """Write the demo history, then compute telemetry and run the rules; return a summary."""
    now = now or timezone.now()
    rng = random.Random(DEMO_SEED)
    live = sorted((i for i in integrations.values() if i.status == "active"), key=lambda i: i.pk)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    rows: list[AccessHourly] = []
    for back in range(HISTORY_DAYS, 0, -1):
        day = midnight - dt.timedelta(days=back)
        for integration in live:
            _history(integration, day, rng, rows, students=students)
    rest = [i for i in live if i.kind == IntegrationKind.ONEROSTER_REST]
    anomalies = []
    if rest and now.hour >= 4:
        # today: an off-hours bulk pull, five times the usual volume
        _hourly(rows, rest[0].pk, Channel.ONEROSTER_REST, REST_USERS, midnight.replace(hour=3),
                60, students * 6)
        anomalies.append(f"{rest[0].name} pulled the roster five times over at 03:00")
    AccessHourly.objects.bulk_create(rows, ignore_conflicts=True)
    if not AccessRecord.objects.filter(client_id=GUESSING_CLIENT).exists():
        AccessRecord.objects.bulk_create([
            AccessRecord(occurred_at=now - dt.timedelta(minutes=2 * n), integration_id=None,
                         channel=Channel.ONEROSTER_REST, endpoint="/oauth/token",
                         status_code=401, client_id=GUESSING_CLIENT)
            for n in range(18)
        ])
        anomalies.append(f"18 refused token requests from {GUESSING_CLIENT}")
    AlertChannel.objects.get_or_create(
        name=DEMO_CHANNEL,
        defaults={"kind": ChannelKind.EMAIL, "target": "governance@demo-school.example",
                  "min_severity": "warning"},
    )
    services.roster_telemetry_catch_up()
    today = timezone.localdate(now)
    services.access_activity_rollup(start=today - dt.timedelta(days=HISTORY_DAYS), end=today)
    report = services.rules_evaluate(now=now)
    return {
        "days_of_history": HISTORY_DAYS,
        "integrations_with_history": len(live),
        "anomalies": anomalies,
        "alerts_raised": sum(report.fired.values()),
        "dashboard": "/admin/monitoring/dashboard/",
    }
