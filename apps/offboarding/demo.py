"""Demo seeding for offboarding: a retired vendor, offboarded end to end with its certificate,
and an incident on record, so the auditor persona has something real to export and verify.

Every step goes through the services staff use; re-running finds the closed offboarding and
changes nothing.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

from django.utils import timezone

from apps.audit.models import FieldClass
from apps.offboarding import incidents, services
from apps.offboarding.models import (
    IncidentKind,
    Offboarding,
    OffboardingStatus,
    OffboardingTrigger,
)
from apps.vendors.models import (
    Contract,
    DataProcessingAgreement,
    Integration,
    IntegrationKind,
    IntegrationStatus,
    SecurityReview,
    Vendor,
)

DEMO_VENDOR = "Past Papers Ltd"
DEMO_INTEGRATION = "Past Papers exam archive (CSV)"
DEMO_EVIDENCE = (b"Past Papers Ltd confirms that all data received from the school was "
                 b"deleted from production and backups. Signed: DPO, Past Papers Ltd.\n")


def _vendor(today: dt.date) -> tuple[Vendor, Integration]:
    vendor, _ = Vendor.objects.get_or_create(
        name=DEMO_VENDOR, defaults={"website": "https://pastpapers.example",
                                    "description": "Exam archive; contract not renewed."})
    contract, _ = Contract.objects.get_or_create(
        vendor=vendor, reference="PP-2024-01",
        defaults={"title": "Exam archive service", "starts_on": today - dt.timedelta(days=730),
                  "ends_on": today - dt.timedelta(days=20)})
    DataProcessingAgreement.objects.get_or_create(
        vendor=vendor, reference="PP-DPA-1",
        defaults={"contract": contract, "signed_on": today - dt.timedelta(days=730),
                  "expires_on": today - dt.timedelta(days=20),
                  "retention_commitment": "For the life of the service.",
                  "deletion_commitment": "Deletes all school data within 14 days of the end "
                                         "of the service and confirms in writing.",
                  "incident_reporting_commitment": "Email the DPO within 24 hours.",
                  "incident_reporting_hours": 24,
                  "allowed_field_classes": [FieldClass.IDENTIFIER, FieldClass.DIRECTORY]})
    SecurityReview.objects.get_or_create(
        vendor=vendor, reviewed_on=today - dt.timedelta(days=400),
        defaults={"expires_on": today - dt.timedelta(days=35), "key_management": True,
                  "incident_reporting": True, "retention": True, "encryption": True})
    integration, _ = Integration.objects.get_or_create(
        name=DEMO_INTEGRATION,
        defaults={"vendor": vendor, "kind": IntegrationKind.ONEROSTER_CSV,
                  "status": IntegrationStatus.ACTIVE, "pseudonymised": True})
    return vendor, integration


def demo_offboarding_seed(*, actor: Any) -> dict[str, Any]:
    """The retired vendor, offboarded (contract end, channels, deletion, certificate)."""
    today = timezone.localdate()
    vendor, _ = _vendor(today)
    done = Offboarding.objects.filter(vendor=vendor, status=OffboardingStatus.CLOSED).first()
    if done is None:
        offboarding = Offboarding.objects.filter(
            vendor=vendor, status=OffboardingStatus.OPEN).first()
        if offboarding is None:
            contract = vendor.contracts.get(reference="PP-2024-01")
            offboarding = services.offboarding_open(
                vendor=vendor, actor=None, trigger=OffboardingTrigger.CONTRACT_END,
                contract=contract,
                reason=f"Contract {contract.reference} ended on {contract.ends_on:%Y-%m-%d}.")
        services.offboarding_run(offboarding=offboarding, actor=actor)
        services.offboarding_deletion_request(
            offboarding=offboarding, actor=actor, requested_to="dpo@pastpapers.example",
            note="Sent by email with the agreement's deletion clause attached.")
        services.offboarding_deletion_confirm(
            offboarding=offboarding, actor=actor, confirmation="Signed letter from their DPO",
            evidence=io.BytesIO(DEMO_EVIDENCE), evidence_name="past-papers-deletion.txt")
        done = services.offboarding_close(offboarding=offboarding, actor=actor)
        incident = incidents.incident_record(
            vendor=vendor, actor=actor, kind=IncidentKind.MISDIRECTED_DATA,
            title="Exam entry list sent to the wrong school's inbox",
            discovered_at=timezone.now() - dt.timedelta(days=40),
            data_classes=[FieldClass.IDENTIFIER, FieldClass.DIRECTORY], people_affected=31)
        incidents.incident_notified(
            incident=incident, actor=actor,
            notified_at=incident.discovered_at + dt.timedelta(hours=30),
            notified="ICO (online form), the receiving school's DPO, affected families")
        incidents.incident_close(incident=incident, actor=actor,
                                 resolution="Recipient confirmed deletion; process changed.")
    return {"vendor": vendor.name, "status": done.status,
            "certificate_kid": done.certificate_kid, "offboarding_id": str(done.pk)}
