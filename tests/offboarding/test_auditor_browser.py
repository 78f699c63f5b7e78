"""An auditor exports a vendor's control pack in a real browser; the pack verifies with the
command, and a copy with one byte changed fails naming the file, on the command line and on
the verify page."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.core.management import call_command

from apps.offboarding.models import ControlPack
from tests.accounts.factories import DEFAULT_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def verify(path) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    try:
        call_command("verify_control_pack", str(path), "--json", stdout=out)
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    return code, json.loads(out.getvalue())


@pytest.fixture
def pack_builder(request, settings):  # type: ignore[no-untyped-def]
    """What builds a queued pack: a real Celery worker on Redis, or (no Redis: Celery runs
    eagerly) the request itself once it commits."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return None
    return request.getfixturevalue("celery_worker")


def test_an_auditor_exports_a_pack_that_verifies_and_a_changed_copy_fails(
    acme, auditor, live_server, browser, tmp_path, pack_builder
):
    # when: Erin signs in and exports Acme's pack from the control packs page
    page = browser.new_context(viewport={"width": 1280, "height": 900},
                               accept_downloads=True).new_page()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", auditor.username)
    page.fill("#id_password", DEFAULT_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    page.goto(f"{live_server.url}/admin/offboarding/controlpack/")
    page.click("#export-pack")
    page.select_option("#id_vendor", label=acme.vendor.name)
    page.screenshot(path=str(tmp_path / "export_form.png"))
    page.click("input[type=submit]")

    # then: the pack is built by a worker; the list refreshes itself until it can be fetched
    assert "is being built" in page.inner_text("ul.messagelist")
    page.wait_for_selector("a.pack-download", timeout=60_000)
    page.screenshot(path=str(tmp_path / "pack_ready.png"))
    with page.expect_download() as download_info:
        page.click("a.pack-download")
    download = download_info.value
    pack = tmp_path / download.suggested_filename
    download.save_as(pack)

    # then: the pack verifies, is recorded against her, and she can change nothing
    assert pack.name.startswith("control-pack-acme-learning-")
    code, report = verify(pack)
    assert code == 0 and report["valid"], report
    assert ControlPack.objects.get().created_by_id == auditor.pk
    page.goto(f"{live_server.url}/admin/offboarding/offboarding/")
    assert page.locator("a.addlink").count() == 0

    # when: one byte of one file is changed
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(pack) as old, zipfile.ZipFile(tampered, "w") as new:
        for name in old.namelist():
            body = old.read(name)
            if name == "scope_approvals.json":
                body = body.replace(b"engineer.requester", b"engineer.requestor", 1)
            new.writestr(name, body)

    # then: the command and the verify page both name it
    code, report = verify(tampered)
    assert code == 1 and report["tampered"] == ["scope_approvals.json"]
    page.goto(f"{live_server.url}/admin/offboarding/controlpack/")
    page.click("#verify-pack")
    page.set_input_files("#id_pack", str(tampered))
    page.click("input[type=submit]")
    result = page.inner_text("#verify-report")
    assert "Invalid" in result and "scope_approvals.json was altered" in result
    page.screenshot(path=str(tmp_path / "verify_tampered.png"), full_page=True)
