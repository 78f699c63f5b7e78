"""The anomaly rules: each reads the base layer or governance state and returns findings.

A rule is a function ``(rule, now) -> list[Finding]``; ``services.rules_evaluate`` turns
findings into alerts (deduplicated by the finding's key) so that a rule stays a pure read
that a test can drive with generated history. Subjects and details carry counts and ids,
never a pupil's identity: alerts are seen by every staff role.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection
from django.db.models import Sum
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.http import urlencode

from apps.alerts.models import Severity
from apps.monitoring import sql
from apps.monitoring.models import MonitoringRule, RosterCount, RosterVersionTelemetry, RuleKey


@dataclass
class Finding:
    key: str
    subject: str
    details: dict = field(default_factory=dict)
    evidence: list[dict] = field(default_factory=list)
    severity: str | None = None


def _t(hours: int) -> dt.timedelta:
    return dt.timedelta(hours=hours)


# The defaults each rule ships with; staff tune them in the admin.
DEFAULTS: dict[str, dict] = {
    RuleKey.IMPORT_HELD: dict(
        threshold=24, window_hours=0, min_volume=0, severity=Severity.WARNING,
        help="Hours an import may wait for a decision before it is escalated.",
    ),
    RuleKey.ROSTER_COUNT: dict(
        threshold=0.25, window_hours=0, min_volume=50, severity=Severity.CRITICAL,
        help="Relative change from the median of the previous versions (0.25 = 25%) that "
             "fires; min volume: smallest baseline count judged; window: versions compared "
             "(0 = 10).",
    ),
    RuleKey.ACCESS_VOLUME: dict(
        threshold=3.0, window_hours=24, min_volume=100, severity=Severity.WARNING,
        help="How many times its usual volume (records served in the window, against the same "
             "window one and two weeks before) an integration may pull before it fires.",
    ),
    RuleKey.ACCESS_HOURS: dict(
        threshold=0.01, window_hours=1, min_volume=20, severity=Severity.WARNING,
        help="An hour of day that held less than this share of the integration's requests "
             "over the previous 14 days is unusual; min volume: requests that make it count.",
    ),
    RuleKey.TOKEN_FAILURES: dict(
        threshold=10, window_hours=1, min_volume=0, severity=Severity.WARNING,
        help="Refused token requests by one client within the window.",
    ),
    RuleKey.PASSBACK_RATE: dict(
        threshold=3.0, window_hours=24, min_volume=20, severity=Severity.WARNING,
        help="Factor by which grade passback (AGS score) calls may rise or fall against the "
             "same window one and two weeks earlier before it fires.",
    ),
    RuleKey.EXCLUDED_ATTEMPTS: dict(
        threshold=1, window_hours=24, min_volume=0, severity=Severity.INFO,
        help="Records withheld by exclusions (counted; whom is never shown) that fire.",
    ),
    RuleKey.APPROVAL_EXPIRY: dict(
        threshold=14, window_hours=168, min_volume=0, severity=Severity.WARNING,
        help="Days before expiry an approval of an active integration is flagged; window: how "
             "long an expired one stays reported.",
    ),
    RuleKey.AGREEMENT_EXPIRY: dict(
        threshold=30, window_hours=0, min_volume=0, severity=Severity.WARNING,
        help="Days before a vendor's data-processing agreement lapses that it is flagged.",
    ),
    RuleKey.REVIEW_EXPIRY: dict(
        threshold=30, window_hours=0, min_volume=0, severity=Severity.WARNING,
        help="Days before a vendor's security review lapses that it is flagged.",
    ),
    RuleKey.DELIVERY_LAG: dict(
        threshold=6, window_hours=24, min_volume=1, severity=Severity.CRITICAL,
        help="Hours a CSV destination may stay behind the newest roster version (the "
             "propagation service level); min volume: failed runs in the window that fire.",
    ),
}


def _admin(name: str, *args: object) -> str:
    try:
        return reverse(f"admin:{name}", args=args)
    except NoReverseMatch:
        return ""


def _link(label: str, name: str, *args: object) -> list[dict]:
    url = _admin(name, *args)
    return [{"label": label, "url": url}] if url else []


def _integration_names(ids: set[int]) -> dict[int, str]:
    from apps.vendors.models import Integration

    return dict(Integration.objects.filter(pk__in=ids).values_list("pk", "name"))


def _destination_levers(name: str) -> list[dict]:
    """The integration's destinations in the delivery admin (pause, deliver now, replay):
    a link by URL name, so oversight never imports the spoke."""
    url = _admin("delivery_destination_changelist")
    if not url:
        return []
    return [{"label": "Destinations (pause, deliver now)",
             "url": f"{url}?{urlencode({'q': name})}"}]


def _integration_evidence(integration_id: int) -> list[dict]:
    """Its activity (charts, last requests) and its levers (effective access, suspend)."""
    return _link("Activity", "monitoring_dashboard_integration", integration_id) + _link(
        "Effective access", "governance_integrationaccess_access", integration_id
    )


# --- roster --------------------------------------------------------------------------------


def import_held(rule: MonitoringRule, now: dt.datetime) -> list[Finding]:
    from apps.roster.models import ImportRun, ImportState

    cutoff = now - _t(int(rule.threshold))
    held = ImportRun.objects.filter(state=ImportState.HELD, received_at__lte=cutoff).select_related(
        "source"
    )
    return [
        Finding(
            key=str(run.pk),
            subject=f"Roster import #{run.pk} ({run.source}) has been held for more than "
                    f"{int(rule.threshold)} hours",
            details={"run": run.pk, "source": run.source.name,
                     "held_since": run.received_at.isoformat()},
            evidence=_link(f"Import #{run.pk}", "roster_importrun_change", run.pk),
        )
        for run in held
    ]


def roster_count(rule: MonitoringRule, now: dt.datetime) -> list[Finding]:
    """The newest version's totals (users, and users per role) against the median of the
    versions before it: 1,200 learners suddenly 2,400 fires; the usual churn does not."""
    compared = rule.window_hours or 10
    recent = list(RosterVersionTelemetry.objects.order_by("-number")[: compared + 1])
    if len(recent) < 2:
        return []
    latest, previous = recent[0], recent[1:]
    series: dict[str, list[int]] = {}
    current: dict[str, int] = {}
    roles = _role_totals([t.pk for t in recent])
    for telemetry in recent:
        values = {f"{entity}": int(n) for entity, n in telemetry.totals.items()}
        values.update({f"{role} users": n for role, n in roles.get(telemetry.pk, {}).items()})
        if telemetry is latest:
            current = values
        else:
            for name, n in values.items():
                series.setdefault(name, []).append(n)
    changed = []
    for name, history in sorted(series.items()):
        if len(history) < len(previous):
            history = history + [0] * (len(previous) - len(history))
        baseline = statistics.median(history)
        now_count = current.get(name, 0)
        if baseline < rule.min_volume:
            continue
        change = (now_count - baseline) / baseline
        if abs(change) >= rule.threshold:
            changed.append({"measure": name, "count": now_count, "baseline": baseline,
                            "change": round(change, 3)})
    if not changed:
        return []
    # one alert per version: the measure that moved most leads, the rest are in the details
    changed.sort(key=lambda c: (-abs(c["change"]), c["measure"]))
    lead = changed[0]
    more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
    return [Finding(
        key=f"v{latest.number}",
        subject=f"Roster v{latest.number}: {lead['measure']} {lead['count']:,} against a "
                f"baseline of {lead['baseline']:,.0f} ({lead['change']:+.0%}){more}",
        details={"version": latest.number, **lead, "changes": changed},
        evidence=_link(f"Version v{latest.number}", "roster_rosterversion_change",
                       latest.version_id)
        # the levers: roll the version back from its page, hold the next import by its gates
        + _link("Quality gates (hold imports)", "roster_qualitygate_changelist"),
    )]


def _role_totals(telemetry_ids: list[int]) -> dict[int, dict[str, int]]:
    rows = (
        RosterCount.objects.filter(telemetry_id__in=telemetry_ids, kind="users_by_org_role")
        .values("telemetry_id", "role").annotate(n=Sum("count"))
    )
    out: dict[int, dict[str, int]] = {}
    for row in rows:
        out.setdefault(row["telemetry_id"], {})[row["role"]] = int(row["n"])
    return out


# --- access --------------------------------------------------------------------------------

BASELINE_DAYS = 14


BASELINE_WEEKS = 2


def _window_vs_baseline(rule: MonitoringRule, now: dt.datetime, *, measure: str,
                        channel_filter: str) -> list[tuple[int, int, float, int]]:
    """(integration, this window, mean of the same window in the previous weeks, days of
    history) for each integration with traffic."""
    window = _t(rule.window_hours or 24)
    window_start = now - window
    with connection.cursor() as cursor:
        cursor.execute(
            sql.ACCESS_WINDOW_VS_BASELINE.format(measure=measure, channel_filter=channel_filter),
            {"window_start": window_start, "now": now,
             "baseline_start": window_start - dt.timedelta(weeks=BASELINE_WEEKS),
             "window_seconds": int(window.total_seconds()), "weeks": BASELINE_WEEKS},
        )
        return cursor.fetchall()


def access_volume(rule: MonitoringRule, now: dt.datetime) -> list[Finding]:
    # what vendors pull (REST, LTI); CSV deliveries are pushed by the hub, sized by the roster
    # itself, which the roster-count rule watches
    pulls = "h.channel <> 'oneroster_csv' AND h.endpoint NOT LIKE '%%/token'"
    rows = _window_vs_baseline(rule, now, measure="records", channel_filter=pulls)
    hits = [
        (iid, cur, base) for iid, cur, base, days in rows
        # a baseline of at least a week, and real volume: a new integration is not anomalous
        if days >= 7 and cur >= rule.min_volume and cur > rule.threshold * max(base, 1.0)
    ]
    names = _integration_names({iid for iid, _, _ in hits})
    return [
        Finding(
            key=f"{iid}:{timezone.localdate(now)}",
            subject=f"{names.get(iid, iid)} pulled {cur:,} records in {rule.window_hours}h, "
                    f"{cur / max(base, 1.0):.1f}× its usual {base:,.0f}",
            details={"integration_id": iid, "records": cur, "baseline": round(base, 1),
                     "window_hours": rule.window_hours},
            evidence=_integration_evidence(iid),
        )
        for iid, cur, base in hits
    ]


def access_hours(rule: MonitoringRule, now: dt.datetime) -> list[Finding]:
    window_start = (now - _t(rule.window_hours or 1)).replace(minute=0, second=0, microsecond=0)
    with connection.cursor() as cursor:
        cursor.execute(
            sql.ACCESS_HOURS_VS_BASELINE,
            {"tz": settings.TIME_ZONE, "window_start": window_start, "now": now,
             "baseline_start": window_start - dt.timedelta(days=BASELINE_DAYS),
             "min_volume": max(rule.min_volume, 1), "threshold": rule.threshold},
        )
        rows = cursor.fetchall()
    names = _integration_names({row[0] for row in rows})
    day = timezone.localdate(now)
    return [
        Finding(
            key=f"{iid}:{day}:{hod:02d}",
            subject=f"{names.get(iid, iid)} made {requests:,} requests at {hod:02d}:00, an hour "
                    f"that held {share:.1%} of its traffic over {BASELINE_DAYS} days",
            details={"integration_id": iid, "hour": hod, "requests": int(requests),
                     "baseline_share": round(share, 4), "baseline_requests": int(total)},
            evidence=_integration_evidence(iid),
        )
        for iid, hod, requests, share, total in rows
    ]


def token_failures(rule: MonitoringRule, now: dt.datetime) -> list[Finding]:
    with connection.cursor() as cursor:
        cursor.execute(sql.TOKEN_FAILURES_BY_CLIENT,
                       {"since": now - _t(rule.window_hours or 1),
                        "threshold": max(int(rule.threshold), 1)})
        rows = cursor.fetchall()
    findings = []
    for client_id, integration_id, failures, first_at, last_at in rows:
        details = {"client_id": client_id, "failures": failures,
                   "first_at": first_at.isoformat(), "last_at": last_at.isoformat()}
        evidence = _link("Access log", "audit_accessrecord_changelist")
        if integration_id is not None:
            details["integration_id"] = integration_id
            evidence = _integration_evidence(integration_id)
        findings.append(Finding(
            key=client_id,
            subject=f"{failures} refused token requests for client {client_id} in "
                    f"{rule.window_hours}h",
            details=details, evidence=evidence,
        ))
    return findings


def passback_rate(rule: MonitoringRule, now: dt.datetime) -> list[Finding]:
    scores = "h.channel = 'lti_ags' AND h.endpoint LIKE '%%score%%'"
    rows = _window_vs_baseline(rule, now, measure="requests", channel_filter=scores)
    factor = max(rule.threshold, 1.0)
    hits = []
    for iid, cur, base, days in rows:
        if days < 7 or max(cur, base) < rule.min_volume:
            continue
        if cur > factor * max(base, 1.0) or cur * factor < base:
            hits.append((iid, cur, base))
    names = _integration_names({iid for iid, _, _ in hits})
    return [
        Finding(
            key=f"{iid}:{timezone.localdate(now)}",
            subject=f"Grade passback by {names.get(iid, iid)}: {cur:,} calls in "
                    f"{rule.window_hours}h against a usual {base:,.0f}",
            details={"integration_id": iid, "calls": cur, "baseline": round(base, 1)},
            evidence=_integration_evidence(iid),
        )
        for iid, cur, base in hits
    ]


def excluded_attempts(rule: MonitoringRule, now: dt.datetime) -> list[Finding]:
    """Exclusions that withheld records: counts only, never who (only safeguarding officers
    may open an exclusion)."""
    from apps.governance.models import ExclusionHit

    since = timezone.localdate(now - _t(rule.window_hours or 24))
    totals = ExclusionHit.objects.filter(day__gte=since).aggregate(
        records=Sum("records"), releases=Sum("releases")
    )
    records, releases = totals["records"] or 0, totals["releases"] or 0
    if records < max(rule.threshold, 1):
        return []
    return [Finding(
        key=str(timezone.localdate(now)),
        subject=f"Exclusions withheld {records:,} records from {releases:,} releases since "
                f"{since}",
        details={"records": records, "releases": releases, "since": str(since)},
        evidence=_link("Exclusions", "governance_exclusion_changelist"),
    )]


# --- governance state ----------------------------------------------------------------------


def approval_expiry(rule: MonitoringRule, now: dt.datetime) -> list[Finding]:
    from apps.governance.models import ScopeRequest

    soon = now + dt.timedelta(days=rule.threshold)
    lapsed_since = now - _t(rule.window_hours or 168)
    rows = (
        ScopeRequest.objects.filter(approved_at__isnull=False, withdrawn_at__isnull=True,
                                    expires_at__gt=lapsed_since, expires_at__lte=soon,
                                    integration__status="active")
        .select_related("integration")
        .order_by("expires_at")
    )
    findings = []
    for request in rows:
        expired = request.expires_at <= now
        on = timezone.localdate(request.expires_at)
        findings.append(Finding(
            key=f"{request.pk}:{'expired' if expired else 'expiring'}",
            subject=(f"Approval #{request.pk} for {request.integration.name} "
                     f"{'expired' if expired else 'expires'} on {on}"),
            details={"request": request.pk, "integration_id": request.integration_id,
                     "expires_on": str(on), "expired": expired},
            evidence=_link(f"Approval #{request.pk}", "governance_scoperequest_change",
                           request.pk),
            severity=Severity.CRITICAL if expired else None,
        ))
    return findings


def _vendors_with_live_integrations():  # type: ignore[no-untyped-def]
    from apps.vendors.models import Vendor

    return Vendor.objects.filter(status="active", integrations__status="active").distinct()


def agreement_expiry(rule: MonitoringRule, now: dt.datetime) -> list[Finding]:
    from apps.vendors.models import DataProcessingAgreement

    return _dated_expiry(
        rule, now, DataProcessingAgreement.objects.current, "data-processing agreement",
        "vendors_dataprocessingagreement_change",
    )


def review_expiry(rule: MonitoringRule, now: dt.datetime) -> list[Finding]:
    from apps.vendors.models import SecurityReview

    return _dated_expiry(
        rule, now, SecurityReview.objects.current, "security review",
        "vendors_securityreview_change",
    )


def _dated_expiry(rule: MonitoringRule, now: dt.datetime, current: Callable, what: str,
                  admin_name: str) -> list[Finding]:
    """A vendor with live integrations whose agreement or review lapses soon or has lapsed."""
    today = timezone.localdate(now)
    horizon = today + dt.timedelta(days=int(rule.threshold))
    findings = []
    for vendor in _vendors_with_live_integrations():
        in_force = list(current(today).filter(vendor=vendor))
        if not in_force:
            findings.append(Finding(
                key=f"{vendor.pk}:none",
                subject=f"{vendor.name} has live integrations but no current {what}",
                details={"vendor_id": vendor.pk}, severity=Severity.CRITICAL,
                evidence=_link(vendor.name, "vendors_vendor_change", vendor.pk),
            ))
            continue
        ends = [row.expires_on for row in in_force if row.expires_on is not None]
        if len(ends) < len(in_force) or not ends:
            continue  # one open-ended: nothing lapses
        last = max(ends)
        if last <= horizon:
            row = next(r for r in in_force if r.expires_on == last)
            findings.append(Finding(
                key=f"{vendor.pk}:{last}",
                subject=f"The {what} of {vendor.name} expires on {last}",
                details={"vendor_id": vendor.pk, "expires_on": str(last)},
                evidence=_link(str(row), admin_name, row.pk),
            ))
    return findings


def delivery_lag(rule: MonitoringRule, now: dt.datetime) -> list[Finding]:
    """CSV destinations behind the newest roster version, or failing: read from the access
    records the delivery runs leave (channel ``oneroster_csv``), never from the delivery app."""
    from apps.roster.models import RosterVersion

    newest = RosterVersion.objects.order_by("-number").values("number", "created_at").first()
    with connection.cursor() as cursor:
        cursor.execute(sql.DELIVERY_STATE, {"since": now - _t(rule.window_hours or 24)})
        rows = cursor.fetchall()
    from apps.monitoring.selectors import service_levels

    # the newest version's propagation to each destination: delivered, but past the target
    propagation = service_levels(versions=1, now=now)
    findings = []
    for iid, name, last_ok, last_ok_hour, failures in rows:
        last = last_ok or last_ok_hour
        if newest and newest["created_at"] <= now - _t(int(rule.threshold)) and (
            last is None or last < newest["created_at"]
        ):
            findings.append(Finding(
                key=f"{iid}:lag:v{newest['number']}",
                subject=f"{name} has not received roster v{newest['number']} "
                        f"(applied {timezone.localtime(newest['created_at']):%Y-%m-%d %H:%M})",
                details={"integration_id": iid, "version": newest["number"],
                         "last_delivered_at": last.isoformat() if last else None},
                evidence=_integration_evidence(iid) + _destination_levers(name),
            ))
        late = next((p for p in propagation if p.integration_id == iid), None)
        if late is not None and late.state == "breached":
            findings.append(Finding(
                key=f"{iid}:late:v{late.version}",
                subject=f"Roster v{late.version} reached {name} after {late.minutes / 60:.1f}h "
                        f"(target {rule.threshold:g}h)",
                details={"integration_id": iid, "version": late.version,
                         "minutes": round(late.minutes or 0, 1)},
                evidence=_integration_evidence(iid) + _destination_levers(name),
                severity=Severity.WARNING,
            ))
        if failures >= max(rule.min_volume, 1):
            findings.append(Finding(
                key=f"{iid}:failing:{timezone.localdate(now)}",
                subject=f"{failures} failed deliveries to {name} in {rule.window_hours}h",
                details={"integration_id": iid, "failures": failures},
                evidence=_integration_evidence(iid) + _destination_levers(name),
            ))
    return findings


RULES: dict[str, Callable[[MonitoringRule, dt.datetime], list[Finding]]] = {
    RuleKey.IMPORT_HELD: import_held,
    RuleKey.ROSTER_COUNT: roster_count,
    RuleKey.ACCESS_VOLUME: access_volume,
    RuleKey.ACCESS_HOURS: access_hours,
    RuleKey.TOKEN_FAILURES: token_failures,
    RuleKey.PASSBACK_RATE: passback_rate,
    RuleKey.EXCLUDED_ATTEMPTS: excluded_attempts,
    RuleKey.APPROVAL_EXPIRY: approval_expiry,
    RuleKey.AGREEMENT_EXPIRY: agreement_expiry,
    RuleKey.REVIEW_EXPIRY: review_expiry,
    RuleKey.DELIVERY_LAG: delivery_lag,
}
