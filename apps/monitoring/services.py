"""Writes of the monitoring app: telemetry, rule evaluation, notifications and levers.

Telemetry is derived with set-based SQL (``sql.py``); a rule never stops the others (each
runs in its own savepoint and a failure is recorded on the rule); levers are the vendors
app's audited services, never a spoke.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.alerts import alerts
from apps.alerts.models import Alert
from apps.audit import audit
from apps.monitoring import metrics, sql
from apps.monitoring.models import AlertChannel, MonitoringRule, RosterVersionTelemetry
from apps.vendors.models import Integration
from apps.vendors.services import integration_suspend

logger = logging.getLogger(__name__)

ERROR_REASON_REQUIRED = "Say why the integration is suspended."
ERROR_ALERT_HAS_NO_INTEGRATION = "This alert does not name an integration to suspend."
CATCH_UP_BATCH = 50


def _without_jit(cursor) -> None:  # type: ignore[no-untyped-def]
    """These statements are short but their estimates are not (generate_series, wide
    aggregates), and PostgreSQL would spend a second compiling them: off for this
    transaction only."""
    cursor.execute("SET LOCAL jit = off")


# --- telemetry -----------------------------------------------------------------------------


def roster_telemetry_record(*, version_id: int) -> RosterVersionTelemetry | None:
    """Record a version's totals and counts per org and role, in one statement.

    Idempotent: a version already recorded is left as it is.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        _without_jit(cursor)
        cursor.execute(sql.ROSTER_TELEMETRY_RECORD, {"version_id": version_id})
    return RosterVersionTelemetry.objects.filter(version_id=version_id).first()


def roster_telemetry_catch_up(*, limit: int = CATCH_UP_BATCH) -> list[int]:
    """Record every applied version that has no telemetry yet (the beat task); return their
    numbers. Reads versions, never the roster's apply code, so ingest stays unaware of us."""
    with connection.cursor() as cursor:
        cursor.execute(sql.ROSTER_VERSIONS_WITHOUT_TELEMETRY, {"limit": limit})
        ids = [row[0] for row in cursor.fetchall()]
    recorded = []
    for version_id in ids:
        telemetry = roster_telemetry_record(version_id=version_id)
        if telemetry is not None:
            recorded.append(telemetry.number)
    return recorded


def access_activity_rollup(*, start: dt.date, end: dt.date) -> int:
    """Recompute the daily access telemetry of ``start``..``end`` from the base layer."""
    with transaction.atomic(), connection.cursor() as cursor:
        _without_jit(cursor)
        # the pupils' runs are sorted once (see the SQL); in memory, not in temporary files
        cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute(
            sql.access_activity_rollup_sql((end - start).days + 1),
            {"start": start, "end": end, "tz": settings.TIME_ZONE},
        )
        return cursor.rowcount


def access_activity_rollup_recent(*, now: dt.datetime | None = None, days: int = 2) -> int:
    """The beat task's rollup: today and the day before (late records land there too)."""
    today = timezone.localdate(now or timezone.now())
    return access_activity_rollup(start=today - dt.timedelta(days=days - 1), end=today)


# --- rules ---------------------------------------------------------------------------------


@dataclass
class EvaluationReport:
    fired: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def rules_ensure_defaults() -> None:
    """Create any rule that is missing with its default thresholds (never overwrite edits)."""
    from apps.monitoring.rules import DEFAULTS

    existing = dict(MonitoringRule.objects.values_list("key", "help"))
    MonitoringRule.objects.bulk_create(
        [MonitoringRule(key=key, **values) for key, values in DEFAULTS.items()
         if key not in existing],
        ignore_conflicts=True,
    )
    # the explanation follows the code; the thresholds stay as staff set them
    for key, values in DEFAULTS.items():
        if key in existing and existing[key] != values["help"]:
            MonitoringRule.objects.filter(key=key).update(help=values["help"])


def rules_evaluate(
    *, now: dt.datetime | None = None, keys: list[str] | None = None
) -> EvaluationReport:
    """Run every enabled rule; each raises its alerts through the foundation's call.

    A rule that fails is recorded on the rule and counted in the metrics; the others still
    run. Returns how many alerts each rule raised.
    """
    from apps.monitoring.rules import RULES

    now = now or timezone.now()
    rules_ensure_defaults()
    report = EvaluationReport()
    selected = MonitoringRule.objects.filter(enabled=True)
    if keys is not None:
        selected = selected.filter(key__in=keys)
    for rule in selected:
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    _without_jit(cursor)
                findings = RULES[rule.key](rule, now)
                for finding in findings:
                    alerts.raise_alert(
                        rule=f"monitoring.{rule.key}", subject=finding.subject,
                        severity=finding.severity or rule.severity,
                        dedup_key=f"monitoring.{rule.key}:{finding.key}",
                        details=finding.details, evidence=finding.evidence,
                    )
        except Exception as exc:  # noqa: BLE001 - one broken rule must not silence the rest
            logger.exception("monitoring rule %s failed", rule.key)
            report.failed[rule.key] = f"{type(exc).__name__}: {exc}"[:500]
            metrics.RULE_FAILURES.labels(rule.key).inc()
            MonitoringRule.objects.filter(pk=rule.pk).update(
                last_run_at=now, last_error=report.failed[rule.key]
            )
            continue
        report.fired[rule.key] = len(findings)
        if findings:
            metrics.ALERTS_RAISED.labels(rule.key).inc(len(findings))
        MonitoringRule.objects.filter(pk=rule.pk).update(
            last_run_at=now, last_fired=len(findings), last_error=""
        )
    return report


# --- settings staff change ----------------------------------------------------------------

_RULE_FIELDS = ("enabled", "severity", "threshold", "window_hours", "min_volume")
_CHANNEL_FIELDS = ("name", "kind", "target", "min_severity", "max_per_run", "daily_digest",
                   "enabled")


@transaction.atomic
def monitoring_rule_save(*, rule: MonitoringRule, actor, changed: list[str]) -> MonitoringRule:  # type: ignore[no-untyped-def]
    """Save a rule's thresholds and record who tuned what: a quieter rule is a decision."""
    rule.save()
    audit.record(
        actor=actor, action="monitoring.rule_changed", target=rule,
        details={"rule": rule.key, **{f: getattr(rule, f) for f in _RULE_FIELDS if f in changed}},
    )
    return rule


@transaction.atomic
def alert_channel_save(*, channel: AlertChannel, actor, changed: list[str]) -> AlertChannel:  # type: ignore[no-untyped-def]
    """Save a channel and record the change (the secret is never written to the log)."""
    created = channel.pk is None
    channel.save()
    details = {f: getattr(channel, f) for f in _CHANNEL_FIELDS if created or f in changed}
    if "secret" in changed:
        details["secret"] = "changed"  # noqa: S105 - a marker, not the secret
    audit.record(actor=actor, action="monitoring.channel_saved", target=channel,
                 details={"created": created, **details})
    return channel


# --- levers --------------------------------------------------------------------------------


def alert_integration_id(alert: Alert) -> int | None:
    """The integration an alert is about, when a rule named one in its details."""
    value = (alert.details or {}).get("integration_id")
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return int(value)
    return None


def integration_suspend_from_alert(*, alert: Alert, actor, reason: str) -> Integration:  # type: ignore[no-untyped-def]
    """The one-click lever: suspend the integration an alert names, acknowledge the alert.

    Both are audited by their own services (vendors, alerts); the reason says which alert
    led to it, so the audit trail links the evidence to the decision.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ValueError(ERROR_REASON_REQUIRED)
    integration_id = alert_integration_id(alert)
    if integration_id is None:
        raise ValueError(ERROR_ALERT_HAS_NO_INTEGRATION)
    with transaction.atomic():
        integration = Integration.objects.get(pk=integration_id)
        integration = integration_suspend(
            integration=integration, actor=actor, reason=f"{reason} (alert #{alert.pk})"
        )
        if alert.state == "open":
            alerts.alert_acknowledge(alert=alert, actor=actor)
        audit.record(
            actor=actor, action="monitoring.integration_suspended_from_alert", target=alert,
            details={"alert": alert.pk, "rule": alert.rule, "integration_id": integration.pk},
        )
    return integration
