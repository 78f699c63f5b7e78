"""The roster admin: upload starts a run through the worker path, holds can be decided,
errors are paginated, and the staged file is never offered."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.roster.models import ImportRun, ImportState
from tests.roster.builders import small_district, write_feed

pytestmark = pytest.mark.django_db


@pytest.fixture
def engineer_client(client, staff_user_factory):  # type: ignore[no-untyped-def]
    client.force_login(staff_user_factory(role="engineer"))
    return client


@pytest.fixture
def governance_client(client, staff_user_factory):  # type: ignore[no-untyped-def]
    client.force_login(staff_user_factory(role="governance"))
    return client


def test_an_engineer_uploads_a_feed_and_the_task_applies_it(
    engineer_client, tmp_path, django_capture_on_commit_callbacks
):
    path = write_feed(tmp_path / "feed.zip", small_district())
    with open(path, "rb") as upload, django_capture_on_commit_callbacks(execute=True):
        response = engineer_client.post(reverse("admin:roster_upload"), {"file": upload})
    assert response.status_code == 302
    run = ImportRun.objects.get()
    assert run.state == ImportState.APPLIED and run.origin == "admin"

    page = engineer_client.get(reverse("admin:roster_importrun_change", args=[run.pk]))
    assert page.status_code == 200
    assert run.staged_path.encode() not in page.content


def test_a_governance_user_rejects_a_held_import_with_a_reason(
    governance_client, import_feed
):
    import_feed(small_district(students=10))
    held = import_feed(small_district(students=20))
    url = reverse("admin:roster_importrun_reject", args=[held.pk])

    response = governance_client.post(url, {"reason": "unexpected intake"})

    assert response.status_code == 302
    held.refresh_from_db()
    assert held.state == ImportState.REJECTED and held.decision_reason == "unexpected intake"


def test_an_engineer_cannot_decide_a_hold(engineer_client, import_feed):
    import_feed(small_district(students=10))
    held = import_feed(small_district(students=20))
    response = engineer_client.post(
        reverse("admin:roster_importrun_reject", args=[held.pk]), {"reason": "x"}
    )
    assert response.status_code == 403


def test_errors_and_versions_pages_render(governance_client, import_feed):
    feed = small_district()
    feed["enrollments"][1]["userSourcedId"] = "ghost"
    bad = import_feed(feed)
    good = import_feed(small_district())
    errors = governance_client.get(
        reverse("admin:roster_importrunerror_changelist") + f"?run__id__exact={bad.pk}"
    )
    assert errors.status_code == 200 and b"REFERENCE_MISSING" in errors.content
    versions = governance_client.get(
        reverse("admin:roster_rosterversion_change", args=[good.version.pk])
    )
    assert versions.status_code == 200 and b"enrollments" in versions.content
