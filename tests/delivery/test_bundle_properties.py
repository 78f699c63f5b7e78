"""Properties every bundle holds, for any exclusions and any approved field classes: no
excluded pupil anywhere, no value of an unapproved column, every header present."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.delivery import render
from apps.governance.models import Exclusion, ScopeRequest
from apps.governance.release import release_for
from apps.roster import schema
from tests.delivery.conftest import district
from tests.delivery.test_bundle import read_zip
from tests.governance import release_world as world

PUPILS = ("p1", "p2", "t1")
CLASSES = ("identifier", "directory", "contact", "demographic")


@pytest.fixture
def world_once(db, staff_user_factory):  # type: ignore[no-untyped-def]
    district()
    integration = world.integration(kind="oneroster_csv", name="prop-csv")
    officer = staff_user_factory(username="officer.prop", role="safeguarding")
    return integration, officer


@pytest.mark.django_db
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(excluded=st.sets(st.sampled_from(PUPILS)),
       classes=st.sets(st.sampled_from(CLASSES), min_size=1),
       pseudonymised=st.booleans())
def test_a_bundle_never_holds_an_excluded_pupil_or_an_unapproved_value(
    world_once, excluded, classes, pseudonymised
):
    integration, officer = world_once
    type(integration).objects.filter(pk=integration.pk).update(pseudonymised=pseudonymised)
    ScopeRequest.objects.filter(integration=integration).delete()
    world.approve(integration, orgs=("dist",), services=("csv.delivery",),
                  field_classes=tuple(sorted(classes)))
    Exclusion.objects.all().delete()
    for pupil in excluded:
        Exclusion.objects.create(
            user_sourced_id=pupil, scope="all", reason_code="child_protection", note="p",
            ends_at=timezone.now() + dt.timedelta(days=3), created_by=officer)
    release = release_for(integration)

    out = io.BytesIO()
    render.bundle_write(release, out, mode=render.BULK, since=None, until=0)

    bundle = read_zip(out.getvalue())
    text = out.getvalue()
    with zipfile.ZipFile(io.BytesIO(text)) as archive:
        raw = b"".join(archive.read(n) for n in archive.namelist())
    for pupil in excluded:
        # neither the school id, its pseudonym, nor a name of an excluded person
        assert f"Given{pupil}".encode() not in raw
        assert release.pseudonymiser.pseudonym(pupil).encode() not in raw or not pseudonymised
        assert pupil.encode() + b"," not in raw and b"," + pupil.encode() + b"," not in raw
    for entity, rows in bundle.items():
        if entity == "manifest":
            continue
        approved = set(release.columns(entity))
        for column in schema.SCHEMAS[entity].columns:
            if column.name in ("status", "date_last_modified") or column.name in approved:
                continue
            assert all(row[column.header] == "" for row in rows), (entity, column.header)
    if "contact" not in classes:
        assert b"@pupils.example" not in raw
