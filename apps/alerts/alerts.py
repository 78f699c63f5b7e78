"""The one call every app uses to raise, acknowledge and resolve alerts.

Raising is an upsert on the live alert with the same dedup key, done in one
statement so that two workers noticing the same problem at once make one alert.
"""

from __future__ import annotations

import json

from django.db import connection, transaction
from django.utils import timezone

from apps.alerts.models import Alert, AlertState, Severity
from apps.audit import audit

ERROR_ALREADY_RESOLVED = "This alert is already resolved."
ERROR_RESOLUTION_REQUIRED = "Say how the alert was resolved."

_UPSERT_SQL = """
INSERT INTO alerts_alert
    (rule, severity, subject, details, evidence, dedup_key, state, occurrences,
     first_seen_at, last_seen_at, resolution)
VALUES (%(rule)s, %(severity)s, %(subject)s, %(details)s::jsonb, %(evidence)s::jsonb,
        %(dedup_key)s, 'open', 1, %(now)s, %(now)s, '')
ON CONFLICT (dedup_key) WHERE state <> 'resolved' DO UPDATE SET
    occurrences = alerts_alert.occurrences + 1,
    last_seen_at = EXCLUDED.last_seen_at,
    subject = EXCLUDED.subject,
    details = EXCLUDED.details,
    evidence = EXCLUDED.evidence,
    -- a worse repeat raises the severity; a milder one never lowers it
    severity = CASE
        WHEN EXCLUDED.severity = 'critical' OR alerts_alert.severity = 'critical' THEN 'critical'
        WHEN EXCLUDED.severity = 'warning' OR alerts_alert.severity = 'warning' THEN 'warning'
        ELSE 'info' END
RETURNING id
"""


def raise_alert(
    *,
    rule: str,
    subject: str,
    severity: str = Severity.WARNING,
    dedup_key: str | None = None,
    details: dict | None = None,
    evidence: list[dict] | None = None,
) -> Alert:
    """Open an alert, or count one more occurrence of the live alert with this key.

    ``dedup_key`` defaults to the rule and subject. ``evidence`` is a list of
    ``{"label": ..., "url": ...}`` links. Never put personal data in the subject
    or details: alerts are seen by every staff role.
    """
    if severity not in Severity.values:
        raise ValueError(f"severity must be one of {Severity.values}, got {severity!r}")
    params = {
        "rule": rule,
        "severity": severity,
        "subject": subject[:300],
        "details": json.dumps(details or {}),
        "evidence": json.dumps(evidence or []),
        "dedup_key": (dedup_key or f"{rule}:{subject}")[:300],
        "now": timezone.now(),
    }
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT_SQL, params)
        (alert_id,) = cursor.fetchone()
    return Alert.objects.get(pk=alert_id)


@transaction.atomic
def alert_acknowledge(*, alert: Alert, actor, assignee=None) -> Alert:  # type: ignore[no-untyped-def]
    alert = Alert.objects.select_for_update().get(pk=alert.pk)
    if alert.state == AlertState.RESOLVED:
        raise ValueError(ERROR_ALREADY_RESOLVED)
    alert.state = AlertState.ACKNOWLEDGED
    alert.acknowledged_by = actor
    alert.acknowledged_at = timezone.now()
    alert.assignee = assignee or alert.assignee or actor
    alert.save()
    audit.record(actor=actor, action="alerts.acknowledged", target=alert,
                 details={"rule": alert.rule, "assignee": alert.assignee.get_username()})
    return alert


@transaction.atomic
def alert_resolve(*, alert: Alert, actor, resolution: str) -> Alert:  # type: ignore[no-untyped-def]
    if not resolution.strip():
        raise ValueError(ERROR_RESOLUTION_REQUIRED)
    alert = Alert.objects.select_for_update().get(pk=alert.pk)
    if alert.state == AlertState.RESOLVED:
        raise ValueError(ERROR_ALREADY_RESOLVED)
    alert.state = AlertState.RESOLVED
    alert.resolved_by = actor
    alert.resolved_at = timezone.now()
    alert.resolution = resolution.strip()
    alert.save()
    audit.record(actor=actor, action="alerts.resolved", target=alert,
                 details={"rule": alert.rule, "resolution": alert.resolution})
    return alert


def open_alerts():  # type: ignore[no-untyped-def]
    """Live alerts, worst first, newest first within a severity."""
    from django.db.models import Case, IntegerField, Value, When

    rank = Case(
        When(severity=Severity.CRITICAL, then=Value(0)),
        When(severity=Severity.WARNING, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    return (
        Alert.objects.exclude(state=AlertState.RESOLVED)
        .select_related("assignee")
        .annotate(severity_rank=rank)
        .order_by("severity_rank", "-last_seen_at")
    )
