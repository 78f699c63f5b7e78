"""SIS sources: SFTP pickup from a real OpenSSH server, and a OneRoster REST pull from a real
OneRoster 1.2 provider (this portal's own REST API, served by a live server)."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from apps.delivery import sources
from apps.delivery.models import SourcePickup, SourceTransport
from apps.oneroster_api.services import oauth_client_issue
from apps.roster.models import ImportRun, Source, User
from apps.roster.selectors import roster_current
from tests.delivery.conftest import district
from tests.governance import release_world as world
from tests.roster.builders import small_district, write_feed

OR = "https://purl.imsglobal.org/spec/or/v1p2/scope/"


@pytest.mark.django_db
def test_sftp_pickup_imports_each_file_once_even_when_seen_again(running_sshd, tmp_path,
                                                                   operator):
    drop = running_sshd.folder("sis-drop")
    for leftover in drop.iterdir():
        leftover.unlink()
    write_feed(drop / "2025-09-01.zip", small_district(students=2))
    source = sources.sis_source_create(
        name="mis-sftp", roster_source=Source.objects.create(name="mis"),
        transport=SourceTransport.SFTP, actor=operator, sftp_host="127.0.0.1",
        sftp_port=running_sshd.port, sftp_username=running_sshd.user,
        sftp_directory=str(drop), sftp_host_key=running_sshd.host_key_line,
        sftp_private_key=running_sshd.client_private,
    )

    assert sources.sis_source_sftp_pickup(source=source) == []  # still being written?
    [run] = sources.sis_source_sftp_pickup(source=source, settle_seconds=0)
    assert run.state == "applied"
    assert roster_current(User, source=run.source).count() == 3

    assert sources.sis_source_sftp_pickup(source=source, settle_seconds=0) == []  # not again
    shutil.copy(drop / "2025-09-01.zip", drop / "renamed-copy.zip")
    # same content under a new name
    assert sources.sis_source_sftp_pickup(source=source, settle_seconds=0) == []
    assert ImportRun.objects.filter(source__name="mis").count() == 1
    assert SourcePickup.objects.filter(sis_source=source).count() == 1


@pytest.mark.django_db
def test_sftp_pickup_refuses_a_server_whose_host_key_is_not_pinned(running_sshd, operator):
    from apps.delivery import sftp
    from tests.delivery.conftest import keypair

    _, wrong = keypair()
    source = sources.sis_source_create(
        name="mis-wrong-key", roster_source=Source.objects.create(name="mis2"),
        transport=SourceTransport.SFTP, actor=operator, sftp_host="127.0.0.1",
        sftp_port=running_sshd.port, sftp_username=running_sshd.user,
        sftp_directory=str(running_sshd.folder("sis-drop2")), sftp_host_key=wrong,
        sftp_private_key=running_sshd.client_private,
    )
    with pytest.raises(sftp.SftpError) as caught:
        sources.sis_source_sftp_pickup(source=source, settle_seconds=0)
    assert caught.value.code == sftp.HOST_KEY_MISMATCH


@pytest.mark.django_db(transaction=True)
def test_a_rest_pull_pages_through_a_oneroster_provider_into_the_ingest(live_server,
                                                                       staff_user_factory):
    # given: a SIS that speaks OneRoster 1.2 REST (our own provider, on a live server)
    district()
    governance = staff_user_factory(username="gov.dpo", role="governance")
    sis_side = world.integration(name="sis-side-client")
    world.approve(sis_side, orgs=("dist",), field_classes=("identifier", "directory"),
                  scopes=(OR + "roster-core.readonly", OR + "roster.readonly"))
    issued = oauth_client_issue(integration=sis_side, actor=governance)
    source = sources.sis_source_create(
        name="sis-rest", roster_source=Source.objects.create(name="pulled"),
        transport=SourceTransport.ONEROSTER_REST, actor=governance,
        rest_base_url=live_server.url, rest_token_url=f"{live_server.url}/oauth/token",
        rest_client_id=issued.client_id, rest_client_secret=issued.client_secret,
        rest_page_size=2,  # several pages per collection
    )

    # an unchanged SIS yields the same bytes (so a repeated pull is skipped by its hash)
    def snapshot() -> bytes:
        import io

        client = sources.RestClient(
            base_url=live_server.url, token_url=f"{live_server.url}/oauth/token",
            client_id=issued.client_id, client_secret=issued.client_secret, page_size=2)
        client.authenticate()
        out = io.BytesIO()
        sources.rest_snapshot_write(client, out)
        return out.getvalue()

    assert snapshot() == snapshot()

    # when
    run = sources.sis_source_rest_pull(source=source)

    # then: the snapshot went through the pipeline into its own source
    assert run is not None and run.state == "applied", (run.state, run.message)
    pulled = roster_current(User, source=run.source)
    assert set(pulled.values_list("sourced_id", flat=True)) == {"p1", "p2", "t1"}
    assert run.counts  # parsed per file


@pytest.mark.django_db
def test_sis_pull_from_the_command_line_reports_new_runs_then_none(running_sshd, operator):
    import io
    import json

    from django.core.management import call_command

    drop = running_sshd.folder("sis-drop-cli")
    for leftover in drop.iterdir():
        leftover.unlink()
    write_feed(drop / "feed.zip", small_district(students=1))
    os.utime(drop / "feed.zip", (time.time() - 60, time.time() - 60))  # settled
    sources.sis_source_create(
        name="mis-cli", roster_source=Source.objects.create(name="mis-cli"),
        transport=SourceTransport.SFTP, actor=operator, sftp_host="127.0.0.1",
        sftp_port=running_sshd.port, sftp_username=running_sshd.user,
        sftp_directory=str(drop), sftp_host_key=running_sshd.host_key_line,
        sftp_private_key=running_sshd.client_private,
    )

    def pull() -> list:
        out = io.StringIO()
        call_command("sis_pull", "--source", "mis-cli", "--json", stdout=out)
        return json.loads(out.getvalue())

    [first] = pull()
    assert first["state"] == "applied" and first["file"] == "feed.zip"
    assert pull() == []
