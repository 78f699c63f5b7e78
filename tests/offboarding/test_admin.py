"""The admin journeys over HTTP: governance staff run an offboarding step by step; an auditor
exports and verifies packs but changes nothing; the DPO looks up a pupil's disclosures."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from apps.offboarding import services
from apps.offboarding.models import (
    ControlPack,
    ControlPackState,
    Offboarding,
    OffboardingStatus,
    StepName,
)
from apps.offboarding.tasks import control_pack_build_task
from apps.offboarding.verify import certificate_verify, control_pack_verify
from apps.oneroster_api.services import disclosures_flush

pytestmark = pytest.mark.django_db

OFFBOARDINGS = "/admin/offboarding/offboarding/"
PACKS = "/admin/offboarding/controlpack/"
HISTORY = "/admin/offboarding/disclosurehistory/"


def logged_in(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


def test_governance_runs_an_offboarding_from_the_admin(acme, api, governance_user):
    token = api.token(acme.rest_client)
    client = logged_in(governance_user)

    opened = client.post(OFFBOARDINGS + "add/", {"vendor": acme.vendor.pk,
                                                 "reason": "Contract not renewed"})
    offboarding = Offboarding.objects.get()
    assert opened.status_code == 302 and opened["Location"].endswith(
        f"{offboarding.pk}/steps/")
    page = client.get(opened["Location"])
    assert b"Stop channels and revoke credentials" in page.content

    client.post(f"{OFFBOARDINGS}{offboarding.pk}/run/")
    assert api.get("/users", token).status_code == 401
    client.post(f"{OFFBOARDINGS}{offboarding.pk}/deletion-request/",
                {"requested_to": "dpo@acme.example"})
    client.post(f"{OFFBOARDINGS}{offboarding.pk}/deletion-confirm/", {
        "confirmation": "Signed letter",
        "evidence": SimpleUploadedFile("letter.pdf", b"%PDF letter", "application/pdf")})
    client.post(f"{OFFBOARDINGS}{offboarding.pk}/close/")

    offboarding.refresh_from_db()
    assert offboarding.status == OffboardingStatus.CLOSED
    assert offboarding.steps.count() == len(StepName)
    certificate = client.get(f"{OFFBOARDINGS}{offboarding.pk}/certificate/")
    assert certificate_verify(certificate.content.decode().strip()).valid
    evidence = client.get(f"{OFFBOARDINGS}{offboarding.pk}/evidence/")
    assert evidence.content == b"%PDF letter"


def test_an_auditor_sees_offboardings_but_cannot_run_them(acme, governance_user, auditor):
    offboarding = services.offboarding_open(vendor=acme.vendor, actor=governance_user,
                                            reason="Incident")
    client = logged_in(auditor)
    assert client.get(OFFBOARDINGS).status_code == 200
    page = client.get(f"{OFFBOARDINGS}{offboarding.pk}/steps/")
    assert page.status_code == 200 and b"run-offboarding" not in page.content
    for step in ("run", "close", "deletion-request"):
        assert client.post(f"{OFFBOARDINGS}{offboarding.pk}/{step}/").status_code == 403
    assert client.get(OFFBOARDINGS + "add/").status_code == 403
    assert client.get(f"{OFFBOARDINGS}{offboarding.pk}/evidence/").status_code == 403
    assert not offboarding.steps.exists()


def export(client, vendor, capture, **period) -> ControlPack:  # type: ignore[no-untyped-def]
    """Ask for a pack in the admin, then run what the worker runs for it."""
    with capture(execute=False) as enqueued:
        response = client.post(PACKS + "export/", {"vendor": vendor.pk, **period})
    assert response.status_code == 302 and response["Location"] == PACKS
    pack = ControlPack.objects.latest("created_at")
    assert pack.state == ControlPackState.QUEUED and len(enqueued) == 1
    assert client.get(f"{PACKS}{pack.pk}/download/").status_code == 404  # nothing to fetch yet
    assert b"Building" in client.get(PACKS).content
    control_pack_build_task(str(pack.pk))
    pack.refresh_from_db()
    return pack


def test_an_auditor_exports_a_pack_that_verifies(
    acme, auditor, django_capture_on_commit_callbacks
):
    client = logged_in(auditor)
    assert b"Export a control pack" in client.get(PACKS).content

    pack = export(client, acme.vendor, django_capture_on_commit_callbacks)

    assert pack.state == ControlPackState.READY and pack.created_by == auditor
    download = client.get(f"{PACKS}{pack.pk}/download/")
    assert download["Content-Type"] == "application/zip"
    report = control_pack_verify(io.BytesIO(download.content))
    assert report.valid, report.errors


def test_a_pack_is_built_once_however_often_its_task_is_delivered(
    acme, auditor, django_capture_on_commit_callbacks
):
    pack = export(logged_in(auditor), acme.vendor, django_capture_on_commit_callbacks)

    built = (pack.built_at, pack.manifest_sha256)

    assert control_pack_build_task(str(pack.pk)) is False
    pack.refresh_from_db()
    assert (pack.built_at, pack.manifest_sha256) == built


def test_a_period_that_ends_before_it_starts_is_refused_when_asked(acme, auditor):
    page = logged_in(auditor).post(PACKS + "export/", {
        "vendor": acme.vendor.pk, "period_from": "2026-05-01", "period_to": "2026-04-01"})

    assert page.status_code == 200 and b"starts after it ends" in page.content
    assert not ControlPack.objects.exists()


def test_a_pack_that_cannot_be_built_says_why_and_offers_no_download(
    acme, auditor, django_capture_on_commit_callbacks, settings, tmp_path
):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    settings.MEDIA_ROOT = str(blocked)  # the pack cannot be stored

    pack = export(logged_in(auditor), acme.vendor, django_capture_on_commit_callbacks)

    assert pack.state == ControlPackState.FAILED and pack.error
    page = logged_in(auditor).get(PACKS).content.decode()
    assert "Failed:" in page and "pack-download" not in page
    assert logged_in(auditor).get(f"{PACKS}{pack.pk}/download/").status_code == 404


def test_the_verify_page_names_the_tampered_file(acme, auditor, django_capture_on_commit_callbacks):
    client = logged_in(auditor)
    pack = export(client, acme.vendor, django_capture_on_commit_callbacks)
    content = client.get(f"{PACKS}{pack.pk}/download/").content
    tampered = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(content)) as old, zipfile.ZipFile(tampered, "w") as new:
        for name in old.namelist():
            body = old.read(name)
            new.writestr(name, body + b" " if name == "keys.json" else body)
    page = client.post(PACKS + "verify/", {
        "pack": SimpleUploadedFile("pack.zip", tampered.getvalue(), "application/zip")})
    assert b"Invalid" in page.content and b"keys.json was altered" in page.content
    good = client.post(PACKS + "verify/", {
        "pack": SimpleUploadedFile("pack.zip", content, "application/zip")})
    assert b'data-testid="valid"' in good.content


@pytest.mark.parametrize("role", ["safeguarding", "engineer"])
def test_other_roles_cannot_export_packs(acme, staff_user_factory, role):
    client = logged_in(staff_user_factory(username=f"x.{role}", role=role))
    assert client.post(PACKS + "export/", {"vendor": acme.vendor.pk}).status_code == 403


def test_the_dpo_sees_which_vendors_received_a_pupils_data(acme, api, governance_user):
    token = api.token(acme.rest_client)
    assert api.get("/users", token).status_code == 200
    disclosures_flush()  # what the worker does after the request
    client = logged_in(governance_user)

    page = client.get(HISTORY, {"person": "ID-p1"})
    assert page.status_code == 200
    assert acme.vendor.name.encode() in page.content
    assert b"OneRoster REST" in page.content and b"exclu" not in page.content.lower()
    exported = client.get(HISTORY, {"person": "p1", "format": "csv"})
    assert exported["Content-Type"] == "text/csv"
    assert acme.rest.name in exported.content.decode()


@pytest.mark.parametrize("role", ["auditor", "safeguarding", "engineer"])
def test_only_governance_looks_up_a_pupils_disclosures(acme, staff_user_factory, role):
    client = logged_in(staff_user_factory(username=f"y.{role}", role=role))
    assert client.get(HISTORY, {"person": "p1"}).status_code == 403
