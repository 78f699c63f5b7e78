"""rotate_master_key: every wrapped key moves to the current master key; old files still read."""

from __future__ import annotations

import io
import json
import os

import pytest
from django.core.management import CommandError, call_command

from apps.audit.models import AuditEvent
from apps.keys import files, services
from apps.keys.master import decode_key, generate_key, key_id
from apps.keys.models import DataKey, SigningKey

pytestmark = pytest.mark.django_db


def kid_of(text: str) -> str:
    return key_id(decode_key(text))


def encrypted_files(count: int) -> list[tuple[bytes, bytes]]:
    made = []
    for _ in range(count):
        data = os.urandom(3000)
        out = io.BytesIO()
        files.encrypt_stream(io.BytesIO(data), out, purpose="tests.rotation", chunk_size=1024)
        made.append((data, out.getvalue()))
    return made


def decrypts(ciphertext: bytes) -> bytes:
    out = io.BytesIO()
    files.decrypt_stream(io.BytesIO(ciphertext), out)
    return out.getvalue()


def rotate(*args: str) -> dict:
    out = io.StringIO()
    call_command("rotate_master_key", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def test_rotation_rewraps_everything_and_old_files_read_after_previous_is_dropped(
    settings, master_key, django_capture_on_commit_callbacks
):
    # given files and signing keys under the old master key
    old_key = master_key
    stored = encrypted_files(5)
    # (one capture: the audit flush is registered once per outer transaction)
    with django_capture_on_commit_callbacks(execute=True):
        signer = services.signing_key_active(purpose=SigningKey.Purpose.LTI)
        # when the operator configures a new key, keeps the old as PREVIOUS and rotates
        new_key = generate_key()
        settings.INTERCHANGE_MASTER_KEY = new_key
        settings.INTERCHANGE_MASTER_KEY_PREVIOUS = old_key
        report = rotate("--batch-size", "2")
    # then every key is wrapped by the new master key
    assert report == {
        "new_master_key_id": kid_of(new_key),
        "previous_master_key_ids": [kid_of(old_key)],
        "data_keys_rewrapped": 5,
        "signing_keys_rewrapped": 2,
        "other_secrets_rewrapped": {
            "delivery.Destination.sftp_private_key_wrapped": 0,
            "delivery.SisSource.sftp_private_key_wrapped": 0,
            "delivery.SisSource.rest_client_secret_wrapped": 0,
            "monitoring.AlertChannel.secret_wrapped": 0,
        },
        "batches": 4,  # 2 + 2 + 1 data keys, 2 signing keys
    }
    assert set(DataKey.objects.values_list("master_key_id", flat=True)) == {kid_of(new_key)}
    assert set(SigningKey.objects.values_list("master_key_id", flat=True)) == {kid_of(new_key)}
    # and with PREVIOUS removed, old files and signing keys still work
    settings.INTERCHANGE_MASTER_KEY_PREVIOUS = None
    for data, ciphertext in stored:
        assert decrypts(ciphertext) == data
    signer.refresh_from_db()
    assert services.load_private_key(signer).key_size == 2048
    # and the evidence names key ids and counts, never key material
    event = AuditEvent.objects.get(action="keys.master_key_rotated")
    assert event.details == report
    assert old_key not in str(event.details) and new_key not in str(event.details)


def test_without_rotation_dropping_the_old_key_makes_files_unreadable(settings, master_key):
    [(_, ciphertext)] = encrypted_files(1)
    settings.INTERCHANGE_MASTER_KEY = generate_key()

    with pytest.raises(files.EncryptedFileError) as error:
        decrypts(ciphertext)
    assert error.value.code == files.MASTER_KEY_UNAVAILABLE


def test_rotation_refuses_and_changes_nothing_when_a_wrapping_key_is_missing(settings, master_key):
    encrypted_files(2)
    before = list(DataKey.objects.values_list("wrapped_key", "master_key_id"))
    settings.INTERCHANGE_MASTER_KEY = generate_key()  # the old key is not configured as PREVIOUS

    with pytest.raises(CommandError) as error:
        rotate()

    assert str(error.value) == services.ROTATION_MISSING_KEYS.format(key_ids=kid_of(master_key))
    after = list(DataKey.objects.values_list("wrapped_key", "master_key_id"))
    assert [(bytes(w), k) for w, k in after] == [(bytes(w), k) for w, k in before]


def test_rotating_again_is_a_no_op_and_destroyed_keys_are_left_alone(settings, master_key):
    stored = encrypted_files(3)
    files.data_key_destroy(
        data_key=DataKey.objects.order_by("created_at").first(), reason="retention"
    )
    settings.INTERCHANGE_MASTER_KEY, settings.INTERCHANGE_MASTER_KEY_PREVIOUS = (
        generate_key(),
        master_key,
    )

    assert rotate()["data_keys_rewrapped"] == 2
    assert rotate()["data_keys_rewrapped"] == 0
    settings.INTERCHANGE_MASTER_KEY_PREVIOUS = None
    for data, ciphertext in stored[1:]:
        assert decrypts(ciphertext) == data


def test_generate_rotates_the_sandbox_key_file_in_one_step(settings, master_key, tmp_path):
    key_file = tmp_path / "master.key"
    key_file.write_text(master_key + "\n")
    settings.MASTER_KEY_FILE_DEFAULT = key_file
    settings.IS_SANDBOX = True
    stored = encrypted_files(2)

    report = rotate("--generate")

    new_key = key_file.read_text().strip()
    assert new_key != master_key
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert not (tmp_path / "master.key.previous").exists()
    assert report["new_master_key_id"] == kid_of(new_key)
    assert report["previous_master_key_ids"] == [kid_of(master_key)]
    assert new_key == settings.INTERCHANGE_MASTER_KEY
    assert not settings.INTERCHANGE_MASTER_KEY_PREVIOUS
    for data, ciphertext in stored:
        assert decrypts(ciphertext) == data


def test_generate_resumes_an_interrupted_rotation_with_the_same_keys(
    settings, master_key, tmp_path
):
    # given a run that wrote the new key and kept the old one, then died before re-wrapping
    stored = encrypted_files(2)
    new_key = generate_key()
    (tmp_path / "master.key").write_text(new_key + "\n")
    (tmp_path / "master.key.previous").write_text(master_key + "\n")
    settings.MASTER_KEY_FILE_DEFAULT = tmp_path / "master.key"
    settings.IS_SANDBOX = True
    settings.INTERCHANGE_MASTER_KEY = new_key  # what settings.py loads from the two files

    report = rotate("--generate")

    assert report["data_keys_rewrapped"] == 2
    assert (tmp_path / "master.key").read_text().strip() == new_key
    assert not (tmp_path / "master.key.previous").exists()
    settings.INTERCHANGE_MASTER_KEY_PREVIOUS = None
    assert [decrypts(c) for _, c in stored] == [d for d, _ in stored]


def test_generate_is_refused_outside_the_sandbox(settings, master_key):
    settings.IS_SANDBOX = False
    with pytest.raises(CommandError) as error:
        rotate("--generate")
    assert str(error.value) == services.GENERATE_SANDBOX_ONLY


def test_generate_is_refused_when_the_key_comes_from_the_environment(
    settings, master_key, tmp_path
):
    settings.MASTER_KEY_FILE_DEFAULT = tmp_path / "master.key"  # no file: the key is from env
    settings.IS_SANDBOX = True
    with pytest.raises(CommandError) as error:
        rotate("--generate")
    assert "does not come from it" in str(error.value)


def test_the_command_help_documents_the_operator_flow():
    from apps.keys.management.commands.rotate_master_key import Command

    parser = Command().create_parser("manage.py", "rotate_master_key")
    help_text = parser.format_help()
    assert "INTERCHANGE_MASTER_KEY_PREVIOUS" in help_text
    assert "--generate" in help_text
