"""Control packs from the outside (the two commands): a signed zip that verifies offline, and
that fails naming the file, or the signature, that was tampered with."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.management import call_command
from django.test import Client

from apps.keys.files import open_decrypted
from apps.keys.models import SigningKey
from apps.keys.services import signing_keys_rotate
from apps.offboarding import services
from apps.offboarding.models import ControlPack
from apps.offboarding.packs import PACK_PURPOSE
from apps.offboarding.verify import FILE_ALTERED, MANIFEST, SIGNATURE
from apps.oneroster_api.services import disclosures_flush

pytestmark = pytest.mark.django_db

DOCUMENTS = {
    "vendor.json", "security_reviews.json", "integrations.json", "scope_approvals.json",
    "exclusions.json", "access.json", "disclosures.json", "keys.json", "alerts.json",
    "incidents.json",
    "offboarding.json", "audit_events.json", "audit_chain.json", "data_quality.json",
    "report.html", "report.pdf",  # the PDF is printed by Chromium, which the tests require
}


def export(vendor, path, *args) -> dict:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    call_command("export_control_pack", "--vendor", vendor.name, "--out", str(path), "--json",
                 *args, stdout=out)
    return json.loads(out.getvalue())


def verify(path, *args) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    try:
        call_command("verify_control_pack", str(path), "--json", *args, stdout=out)
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    return code, json.loads(out.getvalue())


def rewrite(src, dst, **replace: bytes) -> None:  # type: ignore[no-untyped-def]
    """A copy of the pack with some members' bytes replaced (``name=bytes``)."""
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for name in old.namelist():
            key = name.replace(".", "_")
            new.writestr(name, replace.get(key, old.read(name)))


@pytest.fixture
def pack(acme, api, pupil, governance_user, tmp_path):  # type: ignore[no-untyped-def]
    """Acme, after some REST traffic and a closed offboarding, exported to a zip."""
    token = api.token(acme.rest_client)
    assert api.get("/users", token).status_code == 200
    disclosures_flush()  # what the worker does after the request
    offboarding = services.offboarding_open(vendor=acme.vendor, actor=governance_user,
                                            reason="Contract not renewed")
    services.offboarding_run(offboarding=offboarding, actor=governance_user)
    services.offboarding_deletion_request(offboarding=offboarding, actor=governance_user,
                                          requested_to="dpo@acme.example")
    services.offboarding_deletion_confirm(offboarding=offboarding, actor=governance_user,
                                          confirmation="Letter")
    services.offboarding_close(offboarding=offboarding, actor=governance_user)
    path = tmp_path / "pack.zip"
    export(acme.vendor, path)
    return path


def test_a_pack_verifies_and_holds_every_document(pack):
    code, report = verify(pack)
    assert code == 0 and report["valid"], report
    with zipfile.ZipFile(pack) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read(MANIFEST))
        offboarding = json.loads(archive.read("offboarding.json"))
        chain = json.loads(archive.read("audit_chain.json"))
        integrations = json.loads(archive.read("integrations.json"))
        pdf = archive.read("report.pdf")
    assert names == DOCUMENTS | {MANIFEST, SIGNATURE}
    assert pdf.startswith(b"%PDF-") and pdf.count(b"/Type /Page\n") + pdf.count(
        b"/Type /Page ") >= 2
    assert set(manifest["files"]) == DOCUMENTS
    assert manifest["audit_chain_head"]["last_hash"] == chain["head"]["last_hash"]
    assert chain["verification"]["intact"] is True
    assert offboarding["offboardings"][0]["certificate"]["jws"]
    # each integration's history shows it was offboarded, and why
    rest = next(i for i in integrations if i["kind"] == "oneroster_rest")
    assert [h["status"] for h in rest["history"]][-2:] == ["offboarding", "offboarded"]


def test_one_byte_changed_names_the_file(pack, tmp_path):
    with zipfile.ZipFile(pack) as archive:
        original = archive.read("access.json")
    tampered = tmp_path / "tampered.zip"
    rewrite(pack, tampered, access_json=original.replace(b"1", b"2", 1))

    code, report = verify(tampered)
    assert code == 1 and not report["valid"]
    assert report["signature_ok"] is True
    assert report["tampered"] == ["access.json"]
    assert report["errors"] == [FILE_ALTERED.format(
        name="access.json", actual=report["errors"][0].split(" is ")[1].split(",")[0],
        expected=json.loads(zipfile.ZipFile(pack).read(MANIFEST))["files"]["access.json"][
            "sha256"])]


def test_the_human_message_names_the_file(pack, tmp_path):
    tampered = tmp_path / "tampered.zip"
    rewrite(pack, tampered, report_html=b"<p>nothing to see</p>")
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("verify_control_pack", str(tampered), stdout=out)
    assert exit_.value.code == 1
    assert "report.html was altered" in out.getvalue()


def test_a_changed_manifest_fails_the_signature(pack, tmp_path):
    with zipfile.ZipFile(pack) as archive:
        manifest = json.loads(archive.read(MANIFEST))
    manifest["vendor"]["name"] = "Someone else"
    tampered = tmp_path / "tampered.zip"
    rewrite(pack, tampered, manifest_json=json.dumps(manifest).encode())
    code, report = verify(tampered)
    assert code == 1 and report["signature_ok"] is False
    assert "manifest.json" in report["tampered"]


def test_a_pack_signed_by_another_key_fails(pack, tmp_path):
    with zipfile.ZipFile(pack) as archive:
        manifest = archive.read(MANIFEST)
        kid = jwt.get_unverified_header(archive.read(SIGNATURE).decode().strip())["kid"]
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = stranger.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    for header_kid in (kid, "someone-elses-key"):
        forged = jwt.api_jws.encode(manifest, pem, algorithm="RS256",
                                    headers={"kid": header_kid}, is_payload_detached=True)
        path = tmp_path / f"forged-{header_kid[:8]}.zip"
        rewrite(pack, path, manifest_jws=forged.encode())
        code, report = verify(path)
        assert code == 1 and report["signature_ok"] is False, header_kid
        assert report["errors"]


def test_a_pack_verifies_offline_after_its_key_is_retired(pack, tmp_path):
    signing_keys_rotate(purpose=SigningKey.Purpose.EVIDENCE)
    signing_keys_rotate(purpose=SigningKey.Purpose.EVIDENCE)
    jwks = tmp_path / "evidence-jwks.json"
    jwks.write_bytes(Client().get("/keys/evidence/jwks").content)
    code, report = verify(pack, "--jwks", str(jwks))
    assert code == 0 and report["valid"], report


def test_a_file_added_to_the_pack_is_named(pack, tmp_path):
    extra = tmp_path / "extra.zip"
    with zipfile.ZipFile(pack) as old, zipfile.ZipFile(extra, "w") as new:
        for name in old.namelist():
            new.writestr(name, old.read(name))
        new.writestr("note.txt", b"trust me")
    code, report = verify(extra)
    assert code == 1 and report["tampered"] == ["note.txt"]


def test_no_pupil_appears_in_a_pack(pack):
    with zipfile.ZipFile(pack) as archive:
        disclosed = json.loads(archive.read("disclosures.json"))
        blob = b"".join(archive.read(name) for name in archive.namelist())
    # the pack counts the people disclosed, and names none of them
    assert disclosed["totals"] and all(t["users"] >= 1 for t in disclosed["totals"])
    for sourced_id in (b'"p1"', b'"p2"', b"Givenp1", b"p1@pupils.example"):
        assert sourced_id not in blob


def test_the_stored_pack_is_encrypted_and_audited(pack, acme):
    stored = ControlPack.objects.get(vendor=acme.vendor)
    raw = Path(stored.path).read_bytes()
    assert b"manifest.json" not in raw
    with open_decrypted(stored.path, purpose=PACK_PURPOSE) as plain:
        assert plain.read() == pack.read_bytes()


def test_a_period_that_ends_before_it_starts_is_refused(acme, tmp_path):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="starts after it ends"):
        export(acme.vendor, tmp_path / "p.zip", "--from", "2026-02-01", "--to", "2026-01-01")
    assert not ControlPack.objects.exists()


def test_an_unknown_vendor_is_named(db, tmp_path):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No vendor named 'Nobody'"):
        call_command("control_pack", "--vendor", "Nobody", "--out", str(tmp_path / "p.zip"))
