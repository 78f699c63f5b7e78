"""The offboarding workflow, end to end and from the outside: each channel refuses the vendor on
its next attempt, every step is recorded with its evidence, and the certificate verifies."""

from __future__ import annotations

import datetime as dt
import io
import json

import jwt
import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from apps.alerts.models import Alert, Severity
from apps.audit.models import AccessRecord, Channel
from apps.audit.services import access_record
from apps.delivery.models import DestinationState, Transport
from apps.delivery.services import destination_create
from apps.keys.files import open_decrypted
from apps.keys.models import SigningKey
from apps.keys.services import signing_key_active, signing_keys_rotate
from apps.lti import services as lti_services
from apps.lti.models import LaunchHint
from apps.offboarding import services
from apps.offboarding.models import Offboarding, OffboardingStatus, OffboardingTrigger, StepName
from apps.offboarding.verify import certificate_verify
from apps.oneroster_api.models import ClientSecret, OneRosterClient
from apps.vendors.models import Contract, IntegrationStatus, VendorStatus
from tests.offboarding.conftest import build_vendor

pytestmark = pytest.mark.django_db

EVIDENCE = b"%PDF-1.4 vendor deletion certificate\n"


def open_and_run(acme, user, **kwargs):  # type: ignore[no-untyped-def]
    offboarding = services.offboarding_open(vendor=acme.vendor, actor=user,
                                            reason="Service no longer used", **kwargs)
    return services.offboarding_run(offboarding=offboarding, actor=user)


def finish(offboarding, user):  # type: ignore[no-untyped-def]
    services.offboarding_deletion_request(offboarding=offboarding, actor=user,
                                          requested_to="dpo@acme.example")
    services.offboarding_deletion_confirm(
        offboarding=offboarding, actor=user, confirmation="Signed letter from Acme's DPO",
        evidence=io.BytesIO(EVIDENCE), evidence_name="acme-deletion.pdf",
    )
    return services.offboarding_close(offboarding=offboarding, actor=user)


def test_a_rest_client_is_refused_on_its_next_request_once_channels_stop(acme, api,
                                                                          governance_user):
    # given a vendor reading the roster with a live token
    token = api.token(acme.rest_client)
    assert api.get("/users", token).status_code == 200
    offboarding = services.offboarding_open(vendor=acme.vendor, actor=governance_user,
                                            reason="Contract not renewed")
    # when step 1 alone is taken (credentials still exist)
    services.offboarding_channels_stop(offboarding=offboarding, actor=governance_user)
    # then the same token is refused on the very next call, and no new token is granted
    assert api.get("/users", token).status_code == 401
    assert api.token_response(acme.rest_client).status_code == 401


def test_revocation_removes_the_client_its_secrets_and_tokens(acme, api, governance_user):
    token = api.token(acme.rest_client)
    offboarding = open_and_run(acme, governance_user)

    client = OneRosterClient.objects.get(integration=acme.rest)
    assert client.revoked_at is not None
    assert not ClientSecret.objects.filter(client=client, revoked_at__isnull=True).exists()
    assert api.get("/users", token).status_code == 401
    refused = api.token_response(acme.rest_client)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    # the receiver's counts are the step's evidence
    step = offboarding.steps.get(step=StepName.CREDENTIALS_REVOKED)
    assert step.evidence["receivers"][acme.rest.name]["oneroster_api"] == {
        "oauth_clients": 1, "secrets": 1, "tokens": 1}


def test_an_lti_launch_is_refused_and_launches_in_flight_end(acme, pupil, governance_user):
    # a launch the pupil started before the decision
    assert pupil.start(acme.registration.client_id, "cls1").action
    assert LaunchHint.objects.filter(used_at__isnull=True,
                                     expires_at__gt=timezone.now()).count() == 1

    offboarding = open_and_run(acme, governance_user)

    refused = pupil.start(acme.registration.client_id, "cls1")
    assert refused.status == 403 and lti_services.REFUSED in refused.text
    assert not LaunchHint.objects.filter(expires_at__gt=timezone.now(),
                                         used_at__isnull=True).exists()
    lti = offboarding.steps.get(step=StepName.CREDENTIALS_REVOKED).evidence["receivers"][
        acme.lti.name]["lti"]
    assert lti["registrations"] == 1 and lti["deployments"] == 1
    assert lti["launch_hints_expired"] == 1


def test_the_certificate_records_every_step_and_verifies(acme, api, governance_user):
    api.token(acme.rest_client)
    offboarding = finish(open_and_run(acme, governance_user), governance_user)

    assert offboarding.status == OffboardingStatus.CLOSED
    for integration in (acme.rest, acme.csv, acme.lti):
        integration.refresh_from_db()
        assert integration.status == IntegrationStatus.OFFBOARDED
    # a whole-vendor offboarding ends the vendor itself, audited
    acme.vendor.refresh_from_db()
    assert acme.vendor.status == VendorStatus.OFFBOARDED
    report = certificate_verify(offboarding.certificate)
    assert report.valid, report.error
    claims = report.claims
    assert [s["step"] for s in claims["steps"]] == [
        StepName.CHANNELS_STOPPED, StepName.CREDENTIALS_REVOKED, StepName.FILES_PURGED,
        StepName.DELETION_REQUESTED, StepName.DELETION_CONFIRMED, StepName.CLOSED]
    assert {i["name"] for i in claims["integrations"]} == {
        acme.rest.name, acme.csv.name, acme.lti.name}
    assert {i["status"] for i in claims["integrations"]} == {"offboarded"}
    assert claims["deletion"]["evidence_sha256"] == __import__("hashlib").sha256(
        EVIDENCE).hexdigest()
    # step 3: the delivery channel's own answer for each integration is on the certificate
    files = next(s for s in claims["steps"] if s["step"] == StepName.FILES_PURGED)
    assert set(files["evidence"]["receivers"]) == {acme.rest.name, acme.csv.name,
                                                   acme.lti.name}
    assert all("delivery" in answer for answer in files["evidence"]["receivers"].values())
    # the deletion request is due per the agreement ("within 14 days")
    assert "agreement" in claims["steps"][3]["evidence"]["deadline_basis"]
    assert offboarding.deletion_due_on == (
        timezone.localtime(offboarding.deletion_requested_at).date() + dt.timedelta(days=14))


def test_the_time_from_decision_to_last_successful_access_is_measured(acme, api,
                                                                      governance_user):
    token = api.token(acme.rest_client)
    offboarding = services.offboarding_open(vendor=acme.vendor, actor=governance_user,
                                            reason="Incident")
    api.get("/users", token)  # served after the decision, before the channels stop
    last_served = AccessRecord.objects.filter(status_code=200).latest("occurred_at")
    services.offboarding_run(offboarding=offboarding, actor=governance_user)
    api.get("/users", token)  # refused: does not count
    closed = finish(offboarding, governance_user)

    assert closed.last_access_at == last_served.occurred_at
    assert closed.seconds_to_last_access == int(
        (last_served.occurred_at - closed.opened_at).total_seconds())
    assert closed.seconds_to_last_access >= 0


def test_a_certificate_signed_by_a_key_since_retired_still_verifies(acme, governance_user):
    closed = finish(open_and_run(acme, governance_user), governance_user)
    signing_keys_rotate(purpose=SigningKey.Purpose.EVIDENCE)
    assert signing_key_active(purpose=SigningKey.Purpose.EVIDENCE).kid != closed.certificate_kid
    assert certificate_verify(closed.certificate).valid


def test_an_altered_certificate_fails(acme, governance_user):
    closed = finish(open_and_run(acme, governance_user), governance_user)
    header, payload, signature = closed.certificate.split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["seconds_from_decision_to_last_access"] = -1
    forged = ".".join([header, jwt.utils.base64url_encode(
        json.dumps(claims).encode()).decode(), signature])
    report = certificate_verify(forged)
    assert not report.valid and "does not verify" in report.error


def test_deletion_evidence_is_encrypted_at_rest(acme, governance_user):
    closed = finish(open_and_run(acme, governance_user), governance_user)
    with open(closed.evidence_path, "rb") as raw:
        assert EVIDENCE not in raw.read()
    with open_decrypted(closed.evidence_path) as plain:
        assert plain.read() == EVIDENCE


def test_close_needs_the_vendors_confirmation(acme, governance_user):
    offboarding = open_and_run(acme, governance_user)
    services.offboarding_deletion_request(offboarding=offboarding, actor=governance_user,
                                          requested_to="dpo@acme.example")
    with pytest.raises(services.OffboardingError, match="Vendor confirmed deletion"):
        services.offboarding_close(offboarding=offboarding, actor=governance_user)
    assert Offboarding.objects.get(pk=offboarding.pk).status == OffboardingStatus.OPEN


def test_one_integration_can_be_offboarded_alone(acme, api, governance_user):
    token = api.token(acme.rest_client)
    offboarding = open_and_run(acme, governance_user, integration=acme.lti)
    acme.lti.refresh_from_db()
    acme.rest.refresh_from_db()
    assert acme.lti.status == IntegrationStatus.OFFBOARDING
    assert acme.rest.status == IntegrationStatus.ACTIVE
    assert api.get("/users", token).status_code == 200
    assert offboarding.integration_ids == [acme.lti.pk]


def test_a_second_open_offboarding_for_the_vendor_is_refused(acme, governance_user):
    services.offboarding_open(vendor=acme.vendor, actor=governance_user, reason="First")
    with pytest.raises(services.OffboardingError, match="already has an open offboarding"):
        services.offboarding_open(vendor=acme.vendor, actor=governance_user, reason="Again")


def test_a_reason_is_required(acme, governance_user):
    with pytest.raises(services.OffboardingError, match="Give a reason"):
        services.offboarding_open(vendor=acme.vendor, actor=governance_user, reason="  ")


# --- scheduled checks ---------------------------------------------------------------------------


def test_an_ended_contract_opens_an_offboarding_and_alerts(acme, governance_user):
    today = timezone.localdate()
    Contract.objects.filter(pk=acme.contract.pk).update(ends_on=today - dt.timedelta(days=1))
    opened = services.contracts_ended_open(today=today)

    offboarding = Offboarding.objects.get(pk=opened[0])
    assert offboarding.trigger == OffboardingTrigger.CONTRACT_END
    assert offboarding.opened_by is None and offboarding.contract_id == acme.contract.pk
    alert = Alert.objects.get(rule=services.ALERT_OPENED)
    assert acme.vendor.name in alert.subject
    # the next day's check does not open a second one
    assert services.contracts_ended_open(today=today + dt.timedelta(days=1)) == []


def test_a_contract_that_renews_or_is_replaced_opens_nothing(acme, governance_user):
    today = timezone.localdate()
    Contract.objects.filter(pk=acme.contract.pk).update(ends_on=today - dt.timedelta(days=1))
    Contract.objects.create(vendor=acme.vendor, reference="C-renewed",
                            starts_on=today - dt.timedelta(days=1))
    assert services.contracts_ended_open(today=today) == []


def test_an_overdue_deletion_request_is_chased_weekly(acme, governance_user):
    offboarding = open_and_run(acme, governance_user)
    requested = timezone.now() - dt.timedelta(days=20)
    services.offboarding_deletion_request(offboarding=offboarding, actor=governance_user,
                                          requested_to="dpo@acme.example",
                                          requested_at=requested)
    now = timezone.now()
    assert services.deletion_requests_chase(now=now) == [str(offboarding.pk)]
    assert mail.outbox and mail.outbox[0].to == ["dpo@acme.example"]
    alert = Alert.objects.get(rule=services.ALERT_DELETION_OVERDUE)
    assert "6 days overdue" in alert.subject
    # not again the next day; again a week later
    assert services.deletion_requests_chase(now=now + dt.timedelta(days=1)) == []
    assert services.deletion_requests_chase(now=now + dt.timedelta(days=7)) == [
        str(offboarding.pk)]
    offboarding.refresh_from_db()
    assert offboarding.chase_count == 2
    alert.refresh_from_db()
    assert alert.occurrences == 2


def test_a_confirmed_deletion_is_not_chased(acme, governance_user):
    offboarding = open_and_run(acme, governance_user)
    services.offboarding_deletion_request(
        offboarding=offboarding, actor=governance_user, requested_to="dpo@acme.example",
        requested_at=timezone.now() - dt.timedelta(days=40))
    services.offboarding_deletion_confirm(offboarding=offboarding, actor=governance_user,
                                          confirmation="Email from Acme")
    assert services.deletion_requests_chase() == []


def test_an_attempt_after_close_is_refused_and_alerted(acme, api, pupil, governance_user):
    finish(open_and_run(acme, governance_user), governance_user)
    # the vendor tries again: its token request is refused (and recorded by the spoke)
    assert api.token_response(acme.rest_client).status_code == 401

    alerted = services.access_after_close_check()
    assert [(a["integration_id"], a["served"]) for a in alerted] == [(acme.rest.pk, 0)]
    alert = Alert.objects.get(rule=services.ALERT_ACCESS_AFTER_CLOSE)
    assert alert.severity == Severity.WARNING and "all refused" in alert.subject
    # seen once: the next check does not count it again
    assert services.access_after_close_check() == []


def test_an_api_call_with_an_old_token_after_close_is_alerted_as_that_vendor(
    acme, api, governance_user
):
    token = api.token(acme.rest_client)
    finish(open_and_run(acme, governance_user), governance_user)

    assert api.get("/users", token).status_code == 401

    alerted = services.access_after_close_check()
    assert [(a["integration_id"], a["served"]) for a in alerted] == [(acme.rest.pk, 0)]


def test_an_access_served_after_close_is_critical(acme, governance_user):
    finish(open_and_run(acme, governance_user), governance_user)
    access_record(integration_id=acme.lti.pk, channel=Channel.LTI_LAUNCH, endpoint="/lti/auth",
                  status_code=200, records=1, duration_ms=3)
    services.access_after_close_check()
    assert Alert.objects.get(rule=services.ALERT_ACCESS_AFTER_CLOSE).severity == (
        Severity.CRITICAL)


def test_another_vendor_is_untouched(acme, api, governance_user):
    other = build_vendor(governance_user, name="Other Co")
    token = api.token(other.rest_client)
    finish(open_and_run(acme, governance_user), governance_user)
    assert api.get("/users", token).status_code == 200


def test_every_channel_of_the_vendor_refuses_on_its_next_attempt(acme, api, pupil,
                                                                 governance_user):
    """The issue's end-to-end case: REST, CSV and LTI integrations of one vendor."""
    # given: each channel serving the vendor
    token = api.token(acme.rest_client)
    assert api.get("/users", token).status_code == 200
    destination = destination_create(integration=acme.csv, transport=Transport.HTTPS_PULL,
                                     actor=governance_user, link_ttl_hours=1)
    out = io.StringIO()
    call_command("deliver", "--integration", acme.csv.name, "--json", stdout=out)
    link = json.loads(out.getvalue())["download_url"]
    assert pupil.start(acme.registration.client_id, "cls1").action

    # when the vendor is offboarded (steps 1 to 3)
    offboarding = open_and_run(acme, governance_user)

    # then each channel refuses the next attempt
    assert api.get("/users", token).status_code == 401
    assert api.token_response(acme.rest_client).status_code == 401
    assert Client().get(link).status_code == 410
    destination.refresh_from_db()
    assert destination.state == DestinationState.DISABLED
    refused = pupil.start(acme.registration.client_id, "cls1")
    assert refused.status == 403
    # and each channel's answer is the step's evidence
    purged = offboarding.steps.get(step=StepName.FILES_PURGED).evidence["receivers"]
    assert purged[acme.csv.name]["delivery"]["bundles"] == 1
    assert purged[acme.csv.name]["delivery"]["destinations"] == 1


def test_lti_service_tokens_are_revoked(acme, governance_user):
    from apps.lti.models import ServiceToken

    now = timezone.now()
    token = ServiceToken.objects.create(
        token_hash="0" * 64, registration=acme.registration, scopes=["x"], issued_at=now,
        expires_at=now + dt.timedelta(minutes=15))
    offboarding = open_and_run(acme, governance_user)
    token.refresh_from_db()
    assert token.revoked_at is not None
    evidence = offboarding.steps.get(step=StepName.CREDENTIALS_REVOKED).evidence
    assert evidence["receivers"][acme.lti.name]["lti"]["service_tokens_revoked"] == 1


def test_the_certificate_command_verifies_offline_and_refuses_a_forgery(acme, governance_user,
                                                                       tmp_path):
    closed = finish(open_and_run(acme, governance_user), governance_user)
    certificate = tmp_path / "certificate.jws"
    certificate.write_text(closed.certificate)
    jwks = tmp_path / "jwks.json"
    jwks.write_bytes(Client().get("/keys/evidence/jwks").content)
    out = io.StringIO()
    call_command("verify_offboarding_certificate", str(certificate), "--jwks", str(jwks),
                 stdout=out)
    assert out.getvalue().startswith("VALID") and "Closed with a certificate" in out.getvalue()

    header, payload, signature = closed.certificate.split(".")
    certificate.write_text(".".join([header, payload[:-4] + "AAAA", signature]))
    with pytest.raises(SystemExit) as exit_:
        call_command("verify_offboarding_certificate", str(certificate), "--jwks", str(jwks),
                     stdout=io.StringIO())
    assert exit_.value.code == 1


def test_the_scheduled_checks_are_on_the_beat_and_run_as_tasks(acme, settings):
    from apps.offboarding import tasks

    for name in ("offboarding.contracts_ended", "offboarding.deletion_requests_chase",
                 "offboarding.access_after_close_check", "offboarding.incidents_clock_check"):
        assert settings.CELERY_BEAT_SCHEDULE[name]["task"] == name
    Contract.objects.filter(pk=acme.contract.pk).update(
        ends_on=timezone.localdate() - dt.timedelta(days=1))
    opened = tasks.contracts_ended_task.delay().get()
    assert Offboarding.objects.filter(pk__in=opened, vendor=acme.vendor).exists()
    assert tasks.access_after_close_check_task.delay().get() == 0
