"""SFTP push to a real OpenSSH server: pinned host key, key auth, temporary name then
rename, failures that are retried, alerted and never reported as delivered."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.core.management import call_command

from apps.alerts.models import Alert
from apps.audit.models import Disclosure
from apps.delivery import services, sftp
from apps.delivery.models import DeliveryRun, DestinationState, RunReason, RunState
from apps.vendors.services import integration_suspend
from tests.delivery.conftest import keypair

pytestmark = pytest.mark.django_db


def deliver(integration, *extra: str) -> dict:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    try:
        call_command("deliver", "--integration", integration.name, "--json", *extra, stdout=out)
    except SystemExit as exc:
        assert exc.code == 1
    return json.loads(out.getvalue())


def remote_files(destination) -> list[str]:  # type: ignore[no-untyped-def]
    from pathlib import Path

    return sorted(p.name for p in Path(destination.sftp_directory).iterdir())


def test_a_bulk_is_pushed_under_its_final_name_only_and_recorded_as_disclosed(sftp_destination):
    report = deliver(sftp_destination.integration)

    assert report["state"] == "delivered", report
    assert report["mode"] == "bulk" and report["rows"]["users"] == 3
    assert remote_files(sftp_destination) == [report["remote_name"]]  # no .part left behind
    from pathlib import Path

    data = (Path(sftp_destination.sftp_directory) / report["remote_name"]).read_bytes()
    assert report["bytes"] == len(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert "manifest.csv" in archive.namelist() and "users.csv" in archive.namelist()
    disclosed = Disclosure.objects.filter(integration_id=sftp_destination.integration_id,
                                          channel="oneroster_csv")
    assert set(disclosed.values_list("user_sourced_id", flat=True)) == {"p1", "p2", "t1"}
    sftp_destination.refresh_from_db()
    assert sftp_destination.last_delivered_version == report["version_to"]


def test_a_changed_host_key_fails_the_run_at_once_and_raises_a_critical_alert(
    sftp_destination, running_sshd
):
    _, other_host_key = keypair()
    type(sftp_destination).objects.filter(pk=sftp_destination.pk).update(
        sftp_host_key=other_host_key)

    report = deliver(sftp_destination.integration)

    assert report["state"] == "failed"
    assert report["error_code"] == sftp.HOST_KEY_MISMATCH and report["attempts"] == 1
    assert remote_files(sftp_destination) == []
    alert = Alert.objects.get(rule="delivery.failed")
    assert alert.severity == "critical" and "host_key_mismatch" in alert.subject


def test_a_key_the_server_does_not_accept_fails_without_retrying(sftp_destination, operator):
    stranger, _ = keypair()
    services.destination_sftp_key_set(destination=sftp_destination, private_key=stranger,
                                      actor=operator)

    report = deliver(sftp_destination.integration)

    assert report["state"] == "failed" and report["error_code"] == sftp.AUTH_FAILED


def test_the_private_key_is_stored_only_wrapped(sftp_destination, running_sshd):
    sftp_destination.refresh_from_db()
    stored = bytes(sftp_destination.sftp_private_key_wrapped)
    assert running_sshd.client_private.encode() not in stored
    assert b"OPENSSH PRIVATE KEY" not in stored
    assert sftp_destination.sftp_public_key.split()[1] in running_sshd.client_public


def test_sftp_down_is_retried_then_failed_and_alerted_then_delivered_when_it_returns(
    sftp_destination, running_sshd, settings
):
    settings.INTERCHANGE_DELIVERY_MAX_ATTEMPTS = 2
    running_sshd.stop()
    run, _ = services.delivery_run_enqueue(destination=sftp_destination)

    first = services.delivery_run_execute(run=run).run
    assert first.state == RunState.QUEUED and first.error_code == sftp.UNREACHABLE
    assert first.next_attempt_at is not None  # backoff before the next attempt
    assert not Alert.objects.filter(rule="delivery.failed").exists()

    second = services.delivery_run_execute(run=first).run
    assert second.state == RunState.FAILED and second.attempts == 2
    assert Alert.objects.get(rule="delivery.failed").state == "open"
    sftp_destination.refresh_from_db()
    assert sftp_destination.last_delivered_version is None  # never reported as done

    running_sshd.start()
    replayed = services.delivery_run_replay(run=second, actor=None)
    assert not Disclosure.objects.exists()  # nothing left the hub yet
    done = services.delivery_run_execute(run=replayed).run
    assert done.state == RunState.DELIVERED
    # the bundle rendered by the first attempt was sent; its people are in the ledger
    assert set(Disclosure.objects.values_list("user_sourced_id", flat=True)) == {"p1", "p2",
                                                                                 "t1"}
    assert DeliveryRun.objects.filter(destination=sftp_destination).count() == 1
    assert len(remote_files(sftp_destination)) == 1


def test_a_replay_sends_the_same_bundle_to_the_same_name_without_a_second_run(
    sftp_destination
):
    first = deliver(sftp_destination.integration)
    version = first["version_to"]

    again = deliver(sftp_destination.integration, "--replay", "--version", str(version))

    assert again["run"] == first["run"] and again["state"] == "delivered"
    assert again["remote_name"] == first["remote_name"]
    assert remote_files(sftp_destination) == [first["remote_name"]]
    assert DeliveryRun.objects.filter(destination=sftp_destination).count() == 1


def test_asking_twice_for_the_same_version_is_the_same_run(sftp_destination):
    first, created = services.delivery_run_enqueue(destination=sftp_destination, version=0)
    second, created_again = services.delivery_run_enqueue(destination=sftp_destination,
                                                          version=0)
    assert created and not created_again and first.pk == second.pk


def test_a_suspended_integration_is_skipped_on_its_next_run(sftp_destination, operator):
    integration_suspend(integration=sftp_destination.integration, actor=operator,
                        reason="contract lapsed")

    report = deliver(sftp_destination.integration)

    assert report["state"] == "skipped"
    assert report["error_code"] == services.INTEGRATION_NOT_LIVE
    assert remote_files(sftp_destination) == []


def test_a_paused_destination_is_skipped_and_resumes_when_resumed(sftp_destination, operator):
    services.destination_pause(destination=sftp_destination, actor=operator,
                               reason="vendor asked to hold")
    run, _ = services.delivery_run_enqueue(destination=sftp_destination, reason=RunReason.EVENT)

    assert services.delivery_run_execute(run=run).run.state == RunState.SKIPPED
    assert remote_files(sftp_destination) == []

    services.destination_resume(destination=sftp_destination, actor=operator, reason="go")
    assert deliver(sftp_destination.integration, "--bulk")["state"] == "delivered"
    sftp_destination.refresh_from_db()
    assert sftp_destination.state == DestinationState.ACTIVE


def test_one_run_at_a_time_per_destination(sftp_destination):
    """While another worker holds the destination, an attempt leaves the run queued."""
    import psycopg
    from django.db import connection

    run, _ = services.delivery_run_enqueue(destination=sftp_destination)
    params = connection.get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"},
                         autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s, %s)",
                      [services.ADVISORY_LOCK_NAMESPACE, sftp_destination.pk])
        busy = services.delivery_run_execute(run=run)
        assert not busy.ran and busy.run.state == RunState.QUEUED
        other.execute("SELECT pg_advisory_unlock(%s, %s)",
                      [services.ADVISORY_LOCK_NAMESPACE, sftp_destination.pk])
    assert services.delivery_run_execute(run=run).run.state == RunState.DELIVERED


def test_a_master_key_rotation_keeps_the_sftp_key_usable_once_the_old_key_is_gone(
    sftp_destination, settings
):
    """The operator's documented flow (rotate, then drop the previous key) must not strand
    the SFTP client keys the destinations hold wrapped by the old master key."""
    from apps.keys import services as key_services
    from apps.keys.master import generate_key

    settings.INTERCHANGE_MASTER_KEY_PREVIOUS = settings.INTERCHANGE_MASTER_KEY
    settings.INTERCHANGE_MASTER_KEY = generate_key()
    result = key_services.master_key_rotate()
    assert result.other_secrets_rewrapped["delivery.Destination.sftp_private_key_wrapped"] == 1

    settings.INTERCHANGE_MASTER_KEY_PREVIOUS = None
    assert deliver(sftp_destination.integration)["state"] == "delivered"
