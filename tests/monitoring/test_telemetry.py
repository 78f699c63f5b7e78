"""Data and access telemetry: what each roster version looked like, what each integration
did per day, recorded by set-based SQL and kept over time."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from apps.audit.models import Channel
from apps.audit.services import access_record, disclosures_record
from apps.monitoring import services
from apps.monitoring.models import IntegrationActivity, RosterCount, RosterVersionTelemetry
from tests.monitoring import history
from tests.vendors.factories import IntegrationFactory

pytestmark = pytest.mark.django_db


def _counts(telemetry: RosterVersionTelemetry, kind: str) -> dict[tuple[str, str], int]:
    return {
        (c.org_sourced_id, c.role): c.count
        for c in RosterCount.objects.filter(telemetry=telemetry, kind=kind)
    }


def test_a_version_records_totals_per_entity_and_users_per_org_and_role():
    # given v1 with 30 pupils and 3 teachers at school A and 10 pupils at school B
    history.people(30, role="student", org="school-a", enrol_in="class-1")
    history.people(3, role="teacher", org="school-a", enrol_in="class-1")
    history.people(10, role="student", org="school-b")
    v1 = history.version(1, added=86, by_entity={"users": {"added": 43}})

    # when
    telemetry = services.roster_telemetry_record(version_id=v1.pk)

    # then
    assert telemetry.number == 1
    assert telemetry.totals["users"] == 43
    assert telemetry.totals["roles"] == 43
    assert telemetry.totals["enrollments"] == 33
    assert telemetry.added == 86
    assert telemetry.changes == {"users": {"added": 43}}
    assert _counts(telemetry, "users_by_org_role") == {
        ("school-a", "student"): 30, ("school-a", "teacher"): 3, ("school-b", "student"): 10,
    }
    assert _counts(telemetry, "enrolments_by_org_role") == {
        ("school-a", "student"): 30, ("school-a", "teacher"): 3,
    }


def test_each_version_counts_the_rows_as_of_itself_so_history_is_kept():
    # given 20 pupils in v1 and v2, 5 who left in v2, 8 who joined in v2
    history.people(20, since=1)
    history.people(5, since=1, until=2)
    history.people(8, since=2)
    history.version(1)
    history.version(2)

    # when the beat task catches up (twice: the second run is a no-op)
    assert services.roster_telemetry_catch_up() == [1, 2]
    assert services.roster_telemetry_catch_up() == []

    # then
    totals = dict(RosterVersionTelemetry.objects.values_list("number", "totals__users"))
    assert totals == {1: 25, 2: 28}


def test_daily_access_telemetry_names_tokens_launches_and_pupils_disclosed():
    integration = IntegrationFactory()
    iid = integration.pk
    # given a day of traffic as the spokes record it
    for status in (200, 200, 401):
        access_record(integration_id=iid, channel=Channel.ONEROSTER_REST,
                      endpoint="/oauth/token", status_code=status, records=0, duration_ms=3)
    access_record(integration_id=iid, channel=Channel.ONEROSTER_REST,
                  endpoint="/ims/oneroster/rostering/v1p2/users", status_code=200,
                  records=120, duration_ms=40)
    access_record(integration_id=iid, channel=Channel.LTI_LAUNCH, endpoint="/lti/auth",
                  status_code=200, records=1, duration_ms=5)
    access_record(integration_id=iid, channel=Channel.LTI_NRPS,
                  endpoint="/lti/nrps/{context}", status_code=200, records=30, duration_ms=5)
    access_record(integration_id=iid, channel=Channel.LTI_AGS,
                  endpoint="/lti/ags/{lineitem}/scores", status_code=200, records=1,
                  duration_ms=5)
    access_record(integration_id=iid, channel=Channel.ONEROSTER_CSV,
                  endpoint="delivery:sftp", status_code=500, records=0, duration_ms=5)
    disclosures_record(vendor_id=integration.vendor_id, integration_id=iid,
                       channel=Channel.ONEROSTER_REST, field_classes=["identifier"],
                       user_sourced_ids=["p1", "p2", "p3"])
    disclosures_record(vendor_id=integration.vendor_id, integration_id=iid,
                       channel=Channel.LTI_LAUNCH, field_classes=["identifier"],
                       user_sourced_ids=["p3"])
    today = timezone.localdate()

    # when (twice: a rollup replaces the day, it never adds to it)
    services.access_activity_rollup(start=today - dt.timedelta(days=1), end=today)
    services.access_activity_rollup(start=today, end=today)

    # then
    day = IntegrationActivity.objects.get(integration_id=iid, day=today)
    assert (day.requests, day.errors, day.records) == (8, 2, 152)
    assert (day.token_grants, day.token_failures) == (2, 1)
    assert day.rest_requests == 1
    assert (day.launches, day.nrps_calls, day.score_posts) == (1, 1, 1)
    assert (day.deliveries, day.delivery_failures) == (1, 1)
    assert day.users_disclosed == 3
    assert not IntegrationActivity.objects.filter(day=today - dt.timedelta(days=1)).exists()


def test_refused_tokens_without_a_known_client_aggregate_under_no_integration():
    access_record(integration_id=None, channel=Channel.ONEROSTER_REST, endpoint="/oauth/token",
                  status_code=401, records=0, duration_ms=1, client_id="unknown")
    today = timezone.localdate()

    services.access_activity_rollup(start=today, end=today)

    row = IntegrationActivity.objects.get(integration_id__isnull=True, day=today)
    assert row.token_failures == 1


# 3 days: runs expanded into days and grouped; 6 days: runs merged into islands and swept
@pytest.mark.parametrize("days", [3, 6])
def test_pupils_disclosed_per_day_counts_each_pupil_once_across_overlapping_runs(days):
    from apps.audit.models import Disclosure

    integration = IntegrationFactory()
    today = timezone.localdate()

    def run(pupil: str, channel: str, classes: int, first: int, last: int) -> Disclosure:
        return Disclosure(user_sourced_id=pupil, vendor_id=integration.vendor_id,
                          integration_id=integration.pk, channel=channel, field_classes=classes,
                          first_day=today - dt.timedelta(days=first),
                          last_day=today - dt.timedelta(days=last))

    Disclosure.objects.bulk_create([
        run("p1", Channel.ONEROSTER_REST, 1, 5, 3),  # overlapping runs of two channels
        run("p1", Channel.LTI_LAUNCH, 1, 4, 1),
        run("p2", Channel.ONEROSTER_REST, 1, 5, 5),  # touching runs, then a gap
        run("p2", Channel.ONEROSTER_REST, 3, 4, 4),
        run("p2", Channel.ONEROSTER_REST, 1, 2, 0),
        run("p3", Channel.ONEROSTER_REST, 1, 10, 0),  # longer than the range
    ])

    services.access_activity_rollup(start=today - dt.timedelta(days=days - 1), end=today)

    by_day = dict(IntegrationActivity.objects.filter(integration_id=integration.pk)
                  .values_list("day", "users_disclosed"))
    expected = {5: 3, 4: 3, 3: 2, 2: 3, 1: 3, 0: 2}
    assert {(today - day).days: n for day, n in by_day.items()} == {
        back: n for back, n in expected.items() if back < days
    }

