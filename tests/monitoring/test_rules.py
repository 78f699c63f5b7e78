"""Each rule fires on a realistic scenario and stays quiet on normal data (generated history)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from apps.alerts.models import Alert, Severity
from apps.audit.models import AccessRecord, Channel
from apps.governance.models import ExclusionHit, ExclusionReason, ExclusionScope
from apps.governance.services.exclusions import exclusion_create
from apps.monitoring import services
from apps.monitoring.models import MonitoringRule, RuleKey
from apps.roster.models import ImportRun, ImportState, RosterVersion
from tests.governance import release_world as world
from tests.monitoring import history
from tests.vendors.factories import (
    AgreementFactory,
    IntegrationFactory,
    SecurityReviewFactory,
    VendorFactory,
)

pytestmark = pytest.mark.django_db
REST_USERS = "/ims/oneroster/rostering/v1p2/users"


def _run(rule: str, now: dt.datetime) -> list[Alert]:
    report = services.rules_evaluate(now=now, keys=[rule])
    assert report.failed == {}
    return list(Alert.objects.filter(rule=f"monitoring.{rule}").order_by("id"))


def _tune(rule: str, **values: object) -> None:
    services.rules_ensure_defaults()
    MonitoringRule.objects.filter(key=rule).update(**values)


# --- roster ----------------------------------------------------------------------------------


def _roster_versions(learners: list[int]) -> None:
    """One version per figure: that many learners (and 60 teachers throughout)."""
    history.people(60, role="teacher", since=1)
    previous = 0
    for number, count in enumerate(learners, start=1):
        if count > previous:
            history.people(count - previous, since=number)
        previous = max(previous, count)
        history.version(number)
    services.roster_telemetry_catch_up()


def test_a_roster_that_doubles_overnight_raises_a_critical_alert(now):
    # given six versions of about 1,200 learners, then 2,400
    _roster_versions([1180, 1190, 1200, 1200, 1210, 2400])

    alerts = _run(RuleKey.ROSTER_COUNT, now)

    # then one alert for the version, led by the learners, naming every count that moved
    [alert] = alerts
    assert alert.severity == Severity.CRITICAL
    assert alert.details["version"] == 6
    assert {c["measure"] for c in alert.details["changes"]} == {"users", "roles",
                                                                "student users"}
    assert alert.details["measure"] == "student users"
    assert (alert.details["count"], alert.details["baseline"]) == (2400, 1200)
    assert alert.subject == (
        "Roster v6: student users 2,400 against a baseline of 1,200 (+100%) and 2 more"
    )
    assert [e["label"] for e in alert.evidence] == ["Version v6", "Quality gates (hold imports)"]


def test_the_usual_churn_between_versions_is_quiet(now):
    _roster_versions([1180, 1190, 1200, 1200, 1210, 1230])

    assert _run(RuleKey.ROSTER_COUNT, now) == []


def test_an_import_held_longer_than_the_threshold_is_escalated_once(now):
    source = history.source()
    old = ImportRun.objects.create(source=source, state=ImportState.HELD, file_name="a.zip",
                                   file_sha256="a" * 64)
    fresh = ImportRun.objects.create(source=source, state=ImportState.HELD, file_name="b.zip",
                                     file_sha256="b" * 64)
    ImportRun.objects.filter(pk=old.pk).update(received_at=now - dt.timedelta(hours=30))
    ImportRun.objects.filter(pk=fresh.pk).update(received_at=now - dt.timedelta(hours=2))

    first = _run(RuleKey.IMPORT_HELD, now)
    again = _run(RuleKey.IMPORT_HELD, now)

    assert [a.details["run"] for a in first] == [old.pk]
    assert len(again) == 1 and again[0].occurrences == 2


# --- access ----------------------------------------------------------------------------------


def _usual_pulls(integration_id: int, now: dt.datetime, *, records: int = 1000) -> None:
    """Two weeks of a nightly roster sync at 02:00: 10 requests, ``records`` records."""
    history.traffic(integration_id, hours=history.daily_at(2, days=14, now=now),
                    channel=Channel.ONEROSTER_REST, endpoint=REST_USERS, requests=10,
                    records=records)


def test_an_integration_pulling_five_times_its_usual_volume_fires(now):
    integration = IntegrationFactory()
    _usual_pulls(integration.pk, now)
    # today: the usual sync and then 4,000 more records at 03:00
    history.traffic(integration.pk, hours=[now.replace(hour=2), now.replace(hour=3)],
                    channel=Channel.ONEROSTER_REST, endpoint=REST_USERS, requests=10,
                    records=2500)

    alerts = _run(RuleKey.ACCESS_VOLUME, now)

    assert len(alerts) == 1
    assert alerts[0].details["integration_id"] == integration.pk
    assert alerts[0].details["records"] == 5000
    assert integration.name in alerts[0].subject


def test_a_bigger_csv_delivery_is_not_a_pull(now):
    integration = IntegrationFactory(kind="oneroster_csv")
    history.traffic(integration.pk, hours=history.daily_at(1, days=14, now=now),
                    channel=Channel.ONEROSTER_CSV, endpoint="delivery:sftp", requests=1,
                    records=300)
    history.traffic(integration.pk, hours=[now.replace(hour=1)], channel=Channel.ONEROSTER_CSV,
                    endpoint="delivery:sftp", requests=1, records=3000)

    assert _run(RuleKey.ACCESS_VOLUME, now) == []


def test_the_usual_nightly_volume_is_quiet_and_so_is_a_new_integration(now):
    usual, new = IntegrationFactory(), IntegrationFactory()
    _usual_pulls(usual.pk, now)
    history.traffic(usual.pk, hours=[now.replace(hour=2)], channel=Channel.ONEROSTER_REST,
                    endpoint=REST_USERS, requests=10, records=1100)
    # a new integration's first big pull has no baseline to be unusual against
    history.traffic(new.pk, hours=[now.replace(hour=3)], channel=Channel.ONEROSTER_REST,
                    endpoint=REST_USERS, requests=50, records=90000)

    assert _run(RuleKey.ACCESS_VOLUME, now) == []


def test_pulling_at_an_hour_the_integration_never_uses_fires(now):
    integration = IntegrationFactory()
    _usual_pulls(integration.pk, now)
    # the last hour (14:00) is one it never used in two weeks
    history.traffic(integration.pk, hours=[now], channel=Channel.ONEROSTER_REST,
                    endpoint=REST_USERS, requests=40, records=4000)

    alerts = _run(RuleKey.ACCESS_HOURS, now)

    assert len(alerts) == 1
    details = alerts[0].details
    assert (details["integration_id"], details["hour"], details["requests"]) == (
        integration.pk, 14, 40
    )
    assert details["baseline_share"] == 0.0


def test_pulling_at_the_usual_hour_is_quiet(now):
    integration = IntegrationFactory()
    _usual_pulls(integration.pk, now)
    history.traffic(integration.pk, hours=[now.replace(hour=2)], channel=Channel.ONEROSTER_REST,
                    endpoint=REST_USERS, requests=40, records=4000)

    assert _run(RuleKey.ACCESS_HOURS, now.replace(hour=2, minute=40)) == []


def _token_attempts(client_id: str, integration_id: int | None, status: int, count: int,
                    at: dt.datetime) -> None:
    AccessRecord.objects.bulk_create([
        AccessRecord(occurred_at=at - dt.timedelta(minutes=n), integration_id=integration_id,
                     channel=Channel.ONEROSTER_REST, endpoint="/oauth/token",
                     status_code=status, client_id=client_id)
        for n in range(count)
    ])


def test_repeated_token_failures_for_one_client_fire_once_per_client(now):
    integration = IntegrationFactory()
    _token_attempts("client-guessing", integration.pk, 401, 25, now)
    _token_attempts("client-typo", integration.pk, 401, 3, now)  # below the threshold
    _token_attempts("client-fine", integration.pk, 200, 50, now)

    alerts = _run(RuleKey.TOKEN_FAILURES, now)

    assert [a.details["client_id"] for a in alerts] == ["client-guessing"]
    assert alerts[0].details["failures"] == 25
    assert alerts[0].details["integration_id"] == integration.pk


def test_token_failures_older_than_the_window_are_not_counted(now):
    _token_attempts("client-yesterday", None, 401, 30, now - dt.timedelta(hours=5))

    assert _run(RuleKey.TOKEN_FAILURES, now) == []


def _usual_passback(integration_id: int, now: dt.datetime, per_day: int) -> None:
    history.traffic(integration_id, hours=history.daily_at(11, days=14, now=now),
                    channel=Channel.LTI_AGS, endpoint="/lti/ags/{lineitem}/scores",
                    requests=per_day)


def test_grade_passback_that_collapses_or_surges_fires(now):
    collapsed, surged, steady = IntegrationFactory(), IntegrationFactory(), IntegrationFactory()
    for integration in (collapsed, surged, steady):
        _usual_passback(integration.pk, now, per_day=200)
    today = [now.replace(hour=11)]
    history.traffic(collapsed.pk, hours=today, channel=Channel.LTI_AGS,
                    endpoint="/lti/ags/{lineitem}/scores", requests=4)
    history.traffic(surged.pk, hours=today, channel=Channel.LTI_AGS,
                    endpoint="/lti/ags/{lineitem}/scores", requests=2000)
    history.traffic(steady.pk, hours=today, channel=Channel.LTI_AGS,
                    endpoint="/lti/ags/{lineitem}/scores", requests=220)

    alerts = _run(RuleKey.PASSBACK_RATE, now)

    assert sorted(a.details["integration_id"] for a in alerts) == sorted(
        [collapsed.pk, surged.pk]
    )


def _school_days_passback(integration_id: int, now: dt.datetime, *, weeks: int = 3) -> None:
    """Grade passback at 11:00 on school days only (Monday to Friday) for some weeks."""
    days = [now - dt.timedelta(days=d) for d in range(1, 7 * weeks + 1)]
    history.traffic(integration_id, channel=Channel.LTI_AGS, endpoint="/lti/ags/{item}/scores",
                    hours=[d.replace(hour=11) for d in days if d.weekday() < 5], requests=150)


def _next_saturday(now: dt.datetime) -> dt.datetime:
    return now + dt.timedelta(days=(5 - now.weekday()) % 7 + 7)


def test_a_quiet_weekend_is_not_a_passback_collapse_but_a_silent_wednesday_is(now):
    saturday = _next_saturday(now)
    wednesday = saturday - dt.timedelta(days=3)
    at_weekend, midweek = IntegrationFactory(), IntegrationFactory()
    _school_days_passback(at_weekend.pk, saturday)
    _school_days_passback(midweek.pk, wednesday)

    assert _run(RuleKey.PASSBACK_RATE, saturday) == []
    [alert] = _run(RuleKey.PASSBACK_RATE, wednesday)
    assert alert.details == {"integration_id": midweek.pk, "calls": 0, "baseline": 150.0}


def test_withheld_records_are_counted_without_naming_anyone(now, staff_user_factory):
    officer = staff_user_factory(role="safeguarding")
    exclusion = exclusion_create(
        actor=officer, user_sourced_id="pupil-hidden-42", scope=ExclusionScope.ALL_VENDORS,
        reason_code=ExclusionReason.CHILD_PROTECTION, ends_at=now + dt.timedelta(days=30),
    )
    ExclusionHit.objects.create(exclusion=exclusion, day=timezone.localdate(now), records=12,
                                releases=3)

    alerts = _run(RuleKey.EXCLUDED_ATTEMPTS, now)

    assert len(alerts) == 1
    assert alerts[0].details["records"] == 12 and alerts[0].details["releases"] == 3
    text = f"{alerts[0].subject} {alerts[0].details} {alerts[0].evidence}"
    assert "pupil-hidden-42" not in text
    assert set(alerts[0].details) == {"records", "releases", "since"}


def test_no_withheld_records_is_quiet(now):
    assert _run(RuleKey.EXCLUDED_ATTEMPTS, now) == []


# --- governance state ------------------------------------------------------------------------


def test_approvals_expiring_soon_or_just_expired_fire_for_active_integrations(now):
    integration = IntegrationFactory()
    expiring = world.approve(integration, approved_at=now - dt.timedelta(days=355), days=360)
    expired = world.approve(integration, approved_at=now - dt.timedelta(days=32), days=30)
    world.approve(integration, approved_at=now - dt.timedelta(days=10), days=365)  # fine
    suspended = IntegrationFactory(status="suspended")
    world.approve(suspended, approved_at=now - dt.timedelta(days=355), days=360)

    alerts = {a.details["request"]: a for a in _run(RuleKey.APPROVAL_EXPIRY, now)}

    assert set(alerts) == {expiring.pk, expired.pk}
    assert alerts[expired.pk].severity == Severity.CRITICAL
    assert alerts[expiring.pk].severity == Severity.WARNING


def test_agreements_and_reviews_lapsing_for_vendors_with_live_integrations_fire(now):
    today = timezone.localdate(now)
    lapsing = VendorFactory(name="Lapsing Ltd")
    AgreementFactory(vendor=lapsing, expires_on=today + dt.timedelta(days=10))
    SecurityReviewFactory(vendor=lapsing, expires_on=today + dt.timedelta(days=5))
    IntegrationFactory(vendor=lapsing)
    healthy = VendorFactory(name="Healthy Ltd")
    AgreementFactory(vendor=healthy)
    SecurityReviewFactory(vendor=healthy)
    IntegrationFactory(vendor=healthy)
    lapsed = VendorFactory(name="Lapsed Ltd")
    IntegrationFactory(vendor=lapsed)
    dormant = VendorFactory(name="Dormant Ltd")  # no live integration: nothing to protect
    IntegrationFactory(vendor=dormant, status="draft")

    agreements = _run(RuleKey.AGREEMENT_EXPIRY, now)
    reviews = _run(RuleKey.REVIEW_EXPIRY, now)

    assert sorted(a.subject for a in agreements) == [
        "Lapsed Ltd has live integrations but no current data-processing agreement",
        f"The data-processing agreement of Lapsing Ltd expires on {today + dt.timedelta(days=10)}",
    ]
    assert sorted(a.subject for a in reviews) == [
        "Lapsed Ltd has live integrations but no current security review",
        f"The security review of Lapsing Ltd expires on {today + dt.timedelta(days=5)}",
    ]


def test_a_destination_behind_the_newest_version_or_failing_fires(now):
    behind = IntegrationFactory(kind="oneroster_csv", name="Behind CSV")
    failing = IntegrationFactory(kind="oneroster_csv", name="Failing CSV")
    current = IntegrationFactory(kind="oneroster_csv", name="Current CSV")
    history.version(1)
    history.version(2)
    RosterVersion.objects.update(created_at=now - dt.timedelta(hours=12))
    history.traffic(behind.pk, hours=[now - dt.timedelta(hours=30)],
                    channel=Channel.ONEROSTER_CSV, endpoint="delivery:sftp", requests=1)
    history.traffic(current.pk, hours=[now - dt.timedelta(hours=11)],
                    channel=Channel.ONEROSTER_CSV, endpoint="delivery:sftp", requests=1)
    history.traffic(failing.pk, hours=[now - dt.timedelta(hours=11)],
                    channel=Channel.ONEROSTER_CSV, endpoint="delivery:sftp", requests=3,
                    errors=2)

    alerts = _run(RuleKey.DELIVERY_LAG, now)

    keys = sorted(a.dedup_key.split(":", 1)[1] for a in alerts)
    today = timezone.localdate(now)
    assert keys == sorted([f"{behind.pk}:lag:v2", f"{failing.pk}:failing:{today}"])
    levers = {e["label"]: e["url"] for e in alerts[0].evidence}
    assert levers["Activity"].startswith("/admin/monitoring/dashboard/integrations/")
    assert levers["Destinations (pause, deliver now)"].startswith(
        "/admin/delivery/destination/?q="
    )


# --- evaluation ------------------------------------------------------------------------------


def test_defaults_are_created_once_and_staff_edits_are_kept():
    services.rules_ensure_defaults()
    MonitoringRule.objects.filter(key=RuleKey.TOKEN_FAILURES).update(threshold=3)

    services.rules_ensure_defaults()

    assert MonitoringRule.objects.count() == len(RuleKey.values)
    assert MonitoringRule.objects.get(key=RuleKey.TOKEN_FAILURES).threshold == 3


def test_a_lowered_threshold_makes_a_rule_fire(now):
    _token_attempts("client-typo", None, 401, 3, now)
    assert _run(RuleKey.TOKEN_FAILURES, now) == []

    _tune(RuleKey.TOKEN_FAILURES, threshold=3)

    assert len(_run(RuleKey.TOKEN_FAILURES, now)) == 1


def test_a_disabled_rule_does_not_run(now):
    _token_attempts("client-guessing", None, 401, 30, now)
    _tune(RuleKey.TOKEN_FAILURES, enabled=False)

    assert _run(RuleKey.TOKEN_FAILURES, now) == []


def test_a_failing_rule_is_recorded_and_the_others_still_run(now):
    _token_attempts("client-guessing", None, 401, 30, now)
    # a broken threshold the database cannot use (NaN hours) breaks one rule only
    _tune(RuleKey.IMPORT_HELD, threshold=float("nan"))

    report = services.rules_evaluate(now=now, keys=[RuleKey.IMPORT_HELD, RuleKey.TOKEN_FAILURES])

    assert RuleKey.IMPORT_HELD in report.failed
    assert report.fired[RuleKey.TOKEN_FAILURES] == 1
    assert MonitoringRule.objects.get(key=RuleKey.IMPORT_HELD).last_error


def test_propagation_is_measured_per_version_and_destination_against_the_target(now):
    from apps.monitoring.selectors import service_levels

    fast = IntegrationFactory(kind="oneroster_csv", name="Fast CSV")
    slow = IntegrationFactory(kind="oneroster_csv", name="Slow CSV")
    waiting = IntegrationFactory(kind="oneroster_csv", name="Waiting CSV")
    history.version(1)
    applied = now - dt.timedelta(hours=10)
    RosterVersion.objects.update(created_at=applied)
    for integration, after in ((fast, dt.timedelta(minutes=20)), (slow, dt.timedelta(hours=8))):
        AccessRecord.objects.create(occurred_at=applied + after, integration_id=integration.pk,
                                    channel=Channel.ONEROSTER_CSV, endpoint="delivery:sftp",
                                    status_code=200, records=10)

    levels = {p.destination: p for p in service_levels(now=now)}
    alerts = _run(RuleKey.DELIVERY_LAG, now)

    assert (levels["Fast CSV"].state, round(levels["Fast CSV"].minutes)) == ("met", 20)
    assert (levels["Slow CSV"].state, round(levels["Slow CSV"].minutes)) == ("breached", 480)
    assert (levels["Waiting CSV"].state, levels["Waiting CSV"].minutes) == ("late", None)
    assert sorted(a.dedup_key.split(":", 1)[1] for a in alerts) == sorted(
        [f"{slow.pk}:late:v1", f"{waiting.pk}:lag:v1"]
    )
