"""Configuring destinations from the command line, as an integration engineer would."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.delivery.models import Destination
from tests.delivery.conftest import keypair

pytestmark = pytest.mark.django_db


def run(*args: str) -> dict:
    out = io.StringIO()
    call_command("delivery_destination", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_an_sftp_destination_is_created_from_a_key_file_and_delivers(
    csv_integration, running_sshd, tmp_path
):
    key_file = tmp_path / "id_ed25519"
    key_file.write_text(running_sshd.client_private)

    report = run("--integration", csv_integration.name,
                 "--sftp", f"127.0.0.1:{running_sshd.port}", "--user", running_sshd.user,
                 "--host-key", running_sshd.host_key_line, "--private-key-file", str(key_file),
                 "--directory", str(running_sshd.folder("cli")))

    assert report["action"] == "created"
    assert report["public_key"].split()[1] == running_sshd.client_public.split()[1]
    out = io.StringIO()
    call_command("deliver", "--integration", csv_integration.name, "--json", stdout=out)
    assert json.loads(out.getvalue())["state"] == "delivered"


def test_a_destination_refuses_a_host_key_it_cannot_read(csv_integration, tmp_path):
    key_file = tmp_path / "k"
    key_file.write_text(keypair()[0])
    with pytest.raises(CommandError, match="host key"):
        run("--integration", csv_integration.name, "--sftp", "127.0.0.1", "--user", "x",
            "--host-key", "not a key", "--private-key-file", str(key_file))
    assert not Destination.objects.exists()


def test_only_a_csv_integration_gets_a_destination(db):
    from tests.governance import release_world as world

    rest = world.integration(name="rest-one")
    with pytest.raises(CommandError, match="not a OneRoster CSV integration"):
        run("--integration", rest.name, "--pull")
