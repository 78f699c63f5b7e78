"""Signed download links from the outside (HTTP), and offboarding's revocation signal."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from apps.audit.models import AccessRecord
from apps.delivery.models import Bundle, DeliveryRun, DestinationState, DownloadLink, RunState
from apps.delivery.views import MSG_GONE
from apps.keys.models import DataKey
from apps.vendors.signals import integration_credentials_revoke

pytestmark = pytest.mark.django_db


def deliver(integration) -> dict:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    call_command("deliver", "--integration", integration.name, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_a_pull_link_downloads_the_bundle_once_and_every_request_is_recorded(pull_destination):
    report = deliver(pull_destination.integration)
    url = report["download_url"]
    http = Client()

    first = http.get(url)
    assert first.status_code == 200 and first["Content-Type"] == "application/zip"
    data = b"".join(first.streaming_content)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert "users.csv" in archive.namelist()
    assert first["Cache-Control"] == "no-store"

    second = http.get(url)
    assert second.status_code == 410 and second.content.decode() == MSG_GONE
    statuses = sorted(AccessRecord.objects.filter(
        integration_id=pull_destination.integration_id, endpoint__startswith="/delivery/"
    ).values_list("status_code", flat=True))
    assert statuses == [200, 410]


def test_an_unknown_token_is_404_and_an_expired_one_410_with_the_same_body_as_used(
    pull_destination
):
    report = deliver(pull_destination.integration)
    DownloadLink.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    http = Client()

    assert http.get("/delivery/download/not-a-token").status_code == 404
    expired = http.get(report["download_url"])
    assert expired.status_code == 410 and expired.content.decode() == MSG_GONE


def test_the_bundle_at_rest_is_encrypted(pull_destination):
    deliver(pull_destination.integration)
    bundle = Bundle.objects.get()
    raw = Path(bundle.path).read_bytes()
    assert raw.startswith(b"ICXENC") and b"users.csv" not in raw and b"Givenp1" not in raw


def test_revoking_credentials_disables_the_destination_expires_links_and_shreds_bundles(
    pull_destination, operator, django_capture_on_commit_callbacks
):
    report = deliver(pull_destination.integration)
    bundle = Bundle.objects.get()
    queued = DeliveryRun.objects.create(destination=pull_destination, idempotency_key="x",
                                        requested_version=99)

    with django_capture_on_commit_callbacks(execute=True):
        answers = integration_credentials_revoke.send(
            sender=None, integration=pull_destination.integration, actor=operator,
            reason="offboarding")

    summary = dict(answers)[next(r for r, _ in answers if r.__module__ ==
                                 "apps.delivery.receivers")]
    assert summary == {"destinations": 1, "links": 1, "bundles": 1, "runs_skipped": 1}
    pull_destination.refresh_from_db()
    assert pull_destination.state == DestinationState.DISABLED
    assert Client().get(report["download_url"]).status_code == 410
    assert not Path(bundle.path).exists()
    assert DataKey.objects.get(pk=bundle.data_key_id).is_destroyed
    queued.refresh_from_db()
    assert queued.state == RunState.SKIPPED
    again = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("deliver", "--integration", pull_destination.integration.name, "--json",
                     "--bulk", stdout=again)
    assert json.loads(again.getvalue())["state"] == "skipped"


def test_bundles_past_retention_are_purged_with_their_keys(
    pull_destination, django_capture_on_commit_callbacks
):
    from apps.delivery.services import bundles_purge

    deliver(pull_destination.integration)
    bundle = Bundle.objects.get()
    path = Path(bundle.path)

    assert bundles_purge() == 0
    with django_capture_on_commit_callbacks(execute=True):
        assert bundles_purge(now=timezone.now() + dt.timedelta(days=8)) == 1
    assert not path.exists()
    bundle.refresh_from_db()
    assert bundle.is_purged and DataKey.objects.get(pk=bundle.data_key_id).is_destroyed
    assert DownloadLink.objects.get().revoked_at is not None
