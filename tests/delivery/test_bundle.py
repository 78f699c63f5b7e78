"""Bundles as a vendor receives them: rendered from the release policy, read back as zips.

Bundles are taken from the outside: ``export_bundle`` (the staff CLI) for what an
integration would receive, and the hub's own OneRoster parser to prove a bundle is a valid
1.2 feed.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zipfile

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.governance.pseudonyms import pseudonymiser_for_vendor
from apps.roster import schema
from apps.roster.models import User
from tests.governance import release_world as world

pytestmark = pytest.mark.django_db


def export(tmp_path, integration, since=None) -> dict[str, list[dict]]:  # type: ignore[no-untyped-def]
    out = tmp_path / "bundle.zip"
    args = ["export_bundle", "--integration", integration.name, "--out", str(out), "--json"]
    if since is not None:
        args += ["--since-version", str(since)]
    call_command(*args, stdout=io.StringIO())
    return read_zip(out.read_bytes())


def read_zip(data: bytes) -> dict[str, list[dict]]:
    """{file name without .csv: rows as dicts}; also checks the header of every file."""
    out: dict[str, list[dict]] = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            assert "/" not in name, "files sit at the root of the zip"
            text = archive.read(name).decode()
            rows = list(csv.reader(io.StringIO(text)))
            entity = name.removesuffix(".csv")
            if entity != "manifest":
                assert tuple(rows[0]) == schema.SCHEMAS[entity].headers_v12
                assert len(rows) > 1, "a data file with a header and no rows is invalid"
            out[entity] = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    return out


def manifest(bundle: dict) -> dict[str, str]:
    return {r["propertyName"]: r["value"] for r in bundle["manifest"]}


def test_a_bulk_has_every_header_of_the_binding_and_a_manifest_naming_its_files(
    tmp_path, csv_integration
):
    bundle = export(tmp_path, csv_integration)

    m = manifest(bundle)
    assert m["manifest.version"] == "1.0" and m["oneroster.version"] == "1.2"
    present = {name for name in bundle if name != "manifest"}
    for name in schema.ALL_FILE_NAMES:
        assert m[f"file.{name}"] == ("bulk" if name in present else "absent")
    assert {"orgs", "users", "enrollments", "classes", "roles"} <= present
    assert all(r["status"] == "" and r["dateLastModified"] == "" for r in bundle["users"])


def test_a_bulk_holds_only_the_approved_scope_and_leaves_unapproved_columns_empty(
    tmp_path, csv_integration
):
    bundle = export(tmp_path, csv_integration)

    users = {r["sourcedId"]: r for r in bundle["users"]}
    assert set(users) == {"p1", "p2", "t1"}  # p9 belongs to another district
    assert users["p1"]["givenName"] == "Givenp1"  # directory: approved
    assert all(r["email"] == "" for r in users.values())  # contact: not approved
    assert "demographics" not in bundle  # demographic class not approved
    assert users["p1"]["grades"] == "07" and users["p1"]["enabledUser"] == "true"
    assert {r["sourcedId"] for r in bundle["orgs"]} == {"dist", "sch1"}


def test_an_excluded_pupil_is_absent_from_a_bulk_with_every_reference_withheld(
    tmp_path, csv_integration, staff_user_factory
):
    from apps.governance.services.exclusions import exclusion_create

    officer = staff_user_factory(username="officer.dsl", role="safeguarding")
    exclusion_create(user_sourced_id="p2", scope="all", reason_code="child_protection",
                     note="test", ends_at=timezone.now() + dt.timedelta(days=30), actor=officer)

    bundle = export(tmp_path, csv_integration)

    text = json.dumps(bundle)
    assert "p2" not in {r["sourcedId"] for r in bundle["users"]}
    assert "p2" not in {r["userSourcedId"] for r in bundle["enrollments"]}
    assert "p2" not in {r["userSourcedId"] for r in bundle["roles"]}
    assert "Givenp2" not in text and '"p2"' not in text


def test_a_pseudonymised_integration_receives_pseudonyms_consistently_across_files(
    tmp_path, db
):
    from tests.delivery.conftest import district

    district()
    integration = world.integration(kind="oneroster_csv", name="pseudo-csv", pseudonymised=True)
    world.approve(integration, orgs=("dist",), services=("csv.delivery",))

    bundle = export(tmp_path, integration)

    pseudo = pseudonymiser_for_vendor(integration.vendor_id)
    expected = {pseudo.pseudonym(s) for s in ("p1", "p2", "t1")}
    assert {r["sourcedId"] for r in bundle["users"]} == expected
    assert {r["userSourcedId"] for r in bundle["enrollments"]} == expected
    assert not {r["username"] for r in bundle["users"]} & {"user.p1", "user.p2", "user.t1"}
    assert not {r["identifier"] for r in bundle["users"]} & {"ID-p1", "ID-p2", "ID-t1"}


def test_cells_a_spreadsheet_would_run_as_formulas_are_neutralised(tmp_path, csv_integration):
    User.objects.filter(sourced_id="p1").update(given_name="=HYPERLINK(\"http://x\")",
                                                family_name="+1", middle_name="@SUM(A1)")
    User.objects.filter(sourced_id="p2").update(given_name="-2", family_name="\tTab")

    users = {r["sourcedId"]: r for r in export(tmp_path, csv_integration)["users"]}

    assert users["p1"]["givenName"] == "'=HYPERLINK(\"http://x\")"
    assert users["p1"]["familyName"] == "'+1"
    assert users["p1"]["middleName"] == "'@SUM(A1)"
    assert users["p2"]["givenName"] == "'-2"
    assert users["p2"]["familyName"] == "'\tTab"
    assert users["t1"]["givenName"] == "Givent1"


def test_an_integration_without_csv_approval_gets_no_bundle(tmp_path, db):
    from django.core.management.base import CommandError

    from tests.delivery.conftest import district

    district()
    integration = world.integration(kind="oneroster_csv", name="rest-only")
    world.approve(integration, orgs=("dist",))  # rostering over REST, not CSV delivery

    with pytest.raises(CommandError, match="no live approval for CSV delivery"):
        export(tmp_path, integration)
