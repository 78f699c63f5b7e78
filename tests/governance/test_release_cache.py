"""The release cache: a reused release costs one query, and every lever still acts on the
very next call, however it is pulled (service, queryset update, raw SQL, time passing)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.governance.models import (
    ExclusionReason,
    ExclusionScope,
    FieldClassification,
    Override,
    ScopeRequest,
)
from apps.governance.release import release_for
from apps.governance.services.exclusions import exclusion_create
from apps.vendors.models import Integration
from tests.governance import release_world as world

pytestmark = pytest.mark.django_db


@pytest.fixture
def school():  # type: ignore[no-untyped-def]
    world.org("dist", type="district")
    world.org("sch1", "dist")
    world.user("p1", org="sch1")
    world.user("p2", org="sch1")


@pytest.fixture
def integration(school):  # type: ignore[no-untyped-def]
    integration = world.integration()
    world.approve(integration, orgs=["dist"])
    return integration


def _queries(fn):  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as ctx:
        result = fn()
    return result, len(ctx.captured_queries)


def _users(release) -> set[str]:  # type: ignore[no-untyped-def]
    return world.ids(release.users())


def test_an_unchanged_release_is_reused_for_one_query(integration):
    first, built = _queries(lambda: release_for(integration))
    again, reused = _queries(lambda: release_for(integration))

    assert reused == 1 < built
    assert again.scopes == first.scopes and again.projection == first.projection
    assert _users(again) == {"p1", "p2"}


def test_a_reused_release_answers_for_the_instant_asked(integration):
    release_for(integration)
    later = timezone.now() + dt.timedelta(seconds=5)

    assert release_for(integration, at=later).at == later


# --- every lever acts on the next call ---------------------------------------------------------


def _suspend_integration(integration, officer):  # type: ignore[no-untyped-def]
    Integration.objects.filter(pk=integration.pk).update(status="suspended")


def _suspend_vendor_in_sql(integration, officer):  # type: ignore[no-untyped-def]
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE vendors_vendor SET status = 'suspended' WHERE id = %s",
            [integration.vendor_id],
        )


def _withdraw_approval(integration, officer):  # type: ignore[no-untyped-def]
    ScopeRequest.objects.filter(integration=integration).update(
        withdrawn_at=timezone.now() - dt.timedelta(seconds=1)
    )


def _exclude_p1(integration, officer):  # type: ignore[no-untyped-def]
    exclusion_create(
        actor=officer, user_sourced_id="p1", scope=ExclusionScope.ALL_VENDORS,
        reason_code=ExclusionReason.COURT_ORDER, ends_at=timezone.now() + dt.timedelta(days=3),
    )


def _move_p1_out_of_scope(integration, officer):  # type: ignore[no-untyped-def]
    # p1's school leaves the district: an org change, not a governance one.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE roster_org SET parent_sourced_id = NULL WHERE sourced_id = 'sch1'")


LEVERS = {
    "integration suspended by a queryset update": (_suspend_integration, set()),
    "vendor suspended in raw SQL": (_suspend_vendor_in_sql, set()),
    "approval withdrawn": (_withdraw_approval, set()),
    "pupil excluded": (_exclude_p1, {"p2"}),
    "school moved out of the approved district": (_move_p1_out_of_scope, set()),
}


@pytest.mark.parametrize("lever", LEVERS.values(), ids=LEVERS.keys())
def test_a_lever_pulled_after_caching_acts_on_the_next_call(integration, officer, lever):
    pull, visible_after = lever
    assert _users(release_for(integration)) == {"p1", "p2"}

    pull(integration, officer)

    assert _users(release_for(integration)) == visible_after


def test_a_classification_review_changes_the_projection_on_the_next_call(integration):
    assert "email" not in release_for(integration).columns("users")

    FieldClassification.objects.create(
        entity="users", column="email", field_class="directory",
        reviewed_at=timezone.now(), reason="test: email is directory data here",
    )

    assert "email" in release_for(integration).columns("users")


def test_an_override_applies_on_the_next_call(integration, officer):
    release_for(integration)
    Override.objects.create(
        kind="preferred_name", user_sourced_id="p1", given_name="Sam", family_name="Safe",
        starts_at=timezone.now() - dt.timedelta(minutes=1),
        ends_at=timezone.now() + dt.timedelta(days=1), created_by=officer, owner=officer,
        reason="test",
    )

    names = {row["sourced_id"]: row["given_name"] for row in release_for(integration).users()}

    assert names["p1"] == "Sam"


# --- time alone --------------------------------------------------------------------------------


def test_an_exclusion_starting_later_applies_from_its_start_without_any_write(
    integration, officer
):
    starts = timezone.now() + dt.timedelta(minutes=10)
    exclusion_create(
        actor=officer, user_sourced_id="p1", scope=ExclusionScope.ALL_VENDORS,
        reason_code=ExclusionReason.COURT_ORDER, starts_at=starts,
        ends_at=starts + dt.timedelta(days=1),
    )
    assert _users(release_for(integration)) == {"p1", "p2"}

    assert _users(release_for(integration, at=starts)) == {"p2"}
    assert _users(release_for(integration, at=starts - dt.timedelta(seconds=1))) == {"p1", "p2"}


def test_an_approval_expiring_ends_the_release_at_its_expiry(school):
    integration = world.integration()
    approval = world.approve(integration, orgs=["dist"], days=1)
    assert release_for(integration).scopes

    assert not release_for(integration, at=approval.expires_at).scopes


# --- transactions ------------------------------------------------------------------------------


def test_a_release_built_inside_a_rolled_back_transaction_is_never_reused(integration, officer):
    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        _exclude_p1(integration, officer)
        assert _users(release_for(integration)) == {"p2"}
        raise Abort

    # Another change commits afterwards. Were generations a counter, it could land on the
    # value the rolled-back transaction saw and revive its release; a sequence never repeats.
    FieldClassification.objects.create(
        entity="users", column="email", field_class="directory",
        reviewed_at=timezone.now(), reason="test",
    )

    assert _users(release_for(integration)) == {"p1", "p2"}


def test_destroying_a_data_key_stamps_a_new_generation():
    from apps.governance.release_cache import generations
    from apps.keys.models import DataKey

    key = DataKey.objects.create(purpose="pseudonym", wrapped_key=b"x", master_key_id="m")
    before = generations()
    DataKey.objects.filter(pk=key.pk).update(wrapped_key=b"y")
    assert generations() == before

    DataKey.objects.filter(pk=key.pk).update(destroyed_at=timezone.now())

    assert generations() != before
