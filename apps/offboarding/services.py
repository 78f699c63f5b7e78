"""The offboarding workflow: every step recorded with its evidence, closed by a signed certificate.

Offboarding acts only through governance state and the base layer (DESIGN.md): step 1 moves
the integrations to ``offboarding`` (every spoke reads ``is_live`` through ``release_for`` and
refuses from its next request); step 2 sends ``integration_credentials_revoke`` and keeps what
each spoke's receiver reports; step 3 records what the delivery spoke purged (its receiver
answers the same signal); step 4 is the deletion request to the vendor, its confirmation and
the evidence file (encrypted at rest), chased when overdue. Close measures the time from the
decision to the last successful access (from the access records), marks the integrations
``offboarded`` and signs a certificate over every step with the ``evidence`` key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import jwt as pyjwt
from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from apps.alerts.alerts import raise_alert
from apps.alerts.models import Severity
from apps.audit import audit
from apps.audit.models import AccessHourly, AccessRecord, AuditChainHead
from apps.keys.files import open_encrypted
from apps.keys.models import SigningKey
from apps.keys.services import sign_jwt
from apps.offboarding.models import (
    Offboarding,
    OffboardingStatus,
    OffboardingStep,
    OffboardingTrigger,
    StepName,
)
from apps.vendors import services as vendor_services
from apps.vendors.models import (
    Contract,
    Integration,
    IntegrationStatus,
    Vendor,
    VendorStatus,
)
from apps.vendors.signals import integration_credentials_revoke

ERROR_REASON_REQUIRED = "Give a reason: it is kept in the audit log and on the certificate."
ERROR_ALREADY_OPEN = "{what} already has an open offboarding."
ERROR_WRONG_VENDOR = "Integration {name} does not belong to vendor {vendor}."
ERROR_NOTHING_TO_OFFBOARD = "{what} has no integration left to offboard."
ERROR_CLOSED = "This offboarding is closed."
ERROR_STEP_DONE = "Step \"{step}\" is already recorded."
ERROR_STEP_MISSING = "Step \"{step}\" must be recorded first."
ERROR_NOT_REQUESTED = "Record the deletion request before its confirmation."
ERROR_CONFIRMATION_REQUIRED = "Say how the vendor confirmed the deletion."

EVIDENCE_PURPOSE = "offboarding.evidence"
CERTIFICATE_TYPE = "interchange.offboarding-certificate/1"
# Used when the agreement's deletion commitment names no number of days.
DEFAULT_DELETION_DAYS = 30
CHASE_INTERVAL_DAYS = 7
NOTE_NO_DELIVERY = (
    "No delivery channel answered the revocation signal: no staged bundles or files are held "
    "for this vendor by this deployment."
)
_DAYS = re.compile(r"(\d{1,3})\s*(?:calendar\s+|working\s+|business\s+)?days?", re.IGNORECASE)
# Spokes whose receivers purge staged bundles and files (step 3) rather than credentials.
_FILE_SPOKES = ("delivery",)

ALERT_OPENED = "offboarding.opened"
ALERT_DELETION_OVERDUE = "offboarding.deletion_overdue"
ALERT_ACCESS_AFTER_CLOSE = "offboarding.access_after_close"


class OffboardingError(ValueError):
    """A step that cannot be taken now; the message says why."""


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise OffboardingError(ERROR_REASON_REQUIRED)
    return reason


def _username(actor: Any) -> str:
    return actor.get_username() if actor is not None else "system"


def _lock(offboarding: Offboarding) -> Offboarding:
    locked = Offboarding.objects.select_for_update().select_related("vendor").get(
        pk=offboarding.pk
    )
    if locked.is_closed:
        raise OffboardingError(ERROR_CLOSED)
    return locked


def _done(offboarding: Offboarding) -> set[str]:
    return set(offboarding.steps.values_list("step", flat=True))


def _step(offboarding: Offboarding, step: str, *, actor: Any, evidence: dict,  # type: ignore[no-untyped-def]
          at=None) -> OffboardingStep:
    if step in _done(offboarding):
        raise OffboardingError(ERROR_STEP_DONE.format(step=StepName(step).label))
    row = OffboardingStep.objects.create(
        offboarding=offboarding, step=step, done_at=at or timezone.now(), actor=actor,
        evidence=evidence,
    )
    audit.record(
        actor=actor, action=f"offboarding.{step}", target=offboarding,
        details={"vendor": offboarding.vendor.name, "step": step, "evidence": evidence},
    )
    return row


def _require(offboarding: Offboarding, *steps: str) -> None:
    done = _done(offboarding)
    for step in steps:
        if step not in done:
            raise OffboardingError(ERROR_STEP_MISSING.format(step=StepName(step).label))


def offboarding_integrations(offboarding: Offboarding) -> list[Integration]:
    """The integrations covered: fixed at step 1, before that those still to be offboarded."""
    if offboarding.integration_ids:
        return list(Integration.objects.filter(pk__in=offboarding.integration_ids).order_by("pk"))
    if offboarding.integration_id:
        return [offboarding.integration]
    return list(
        offboarding.vendor.integrations.exclude(status=IntegrationStatus.OFFBOARDED).order_by("pk")
    )


# --- open ---------------------------------------------------------------------------------------


@transaction.atomic
def offboarding_open(  # type: ignore[no-untyped-def]
    *, vendor: Vendor, actor, reason: str, integration: Integration | None = None,
    trigger: str = OffboardingTrigger.MANUAL, contract: Contract | None = None,
) -> Offboarding:
    """Record the decision to end a data flow (one integration, or the whole vendor).

    The decision time is what the time to the last successful access is measured from.
    """
    reason = _reason(reason)
    vendor = Vendor.objects.select_for_update().get(pk=vendor.pk)
    if integration is not None and integration.vendor_id != vendor.pk:
        raise OffboardingError(ERROR_WRONG_VENDOR.format(name=integration.name, vendor=vendor))
    what = integration.name if integration is not None else f"Vendor {vendor.name}"
    open_ = Offboarding.objects.filter(vendor=vendor, status=OffboardingStatus.OPEN)
    if open_.filter(Q(integration__isnull=True) | Q(integration=integration)).exists():
        raise OffboardingError(ERROR_ALREADY_OPEN.format(what=what))
    if integration is not None and integration.status == IntegrationStatus.OFFBOARDED:
        raise OffboardingError(ERROR_NOTHING_TO_OFFBOARD.format(what=what))
    if integration is None and not vendor.integrations.exclude(
        status=IntegrationStatus.OFFBOARDED
    ).exists():
        raise OffboardingError(ERROR_NOTHING_TO_OFFBOARD.format(what=what))
    offboarding = Offboarding.objects.create(
        vendor=vendor, integration=integration, trigger=trigger, contract=contract,
        reason=reason, opened_by=actor, opened_at=timezone.now(),
    )
    audit.record(
        actor=actor, action="offboarding.opened", target=offboarding,
        details={"vendor": vendor.name, "vendor_id": vendor.pk,
                 "integration_id": integration.pk if integration else None,
                 "trigger": trigger, "reason": reason},
    )
    return offboarding


# --- steps 1 to 3 -------------------------------------------------------------------------------


@transaction.atomic
def offboarding_channels_stop(*, offboarding: Offboarding, actor) -> OffboardingStep:  # type: ignore[no-untyped-def]
    """Step 1: every covered integration goes to ``offboarding``; each channel refuses it on
    its next request or run, because each reads the state through the release policy."""
    offboarding = _lock(offboarding)
    integrations = offboarding_integrations(offboarding)
    if not integrations:
        raise OffboardingError(ERROR_NOTHING_TO_OFFBOARD.format(what=str(offboarding)))
    changed = []
    for integration in integrations:
        before = integration.status
        if before != IntegrationStatus.OFFBOARDING:
            vendor_services.integration_status_set(
                integration=integration, status=IntegrationStatus.OFFBOARDING, actor=actor,
                reason=f"Offboarding: {offboarding.reason}",
                action="offboarding.integration_stopped",
            )
        changed.append({"integration_id": integration.pk, "name": integration.name,
                        "kind": integration.kind, "from": before,
                        "to": IntegrationStatus.OFFBOARDING})
    offboarding.integration_ids = [i.pk for i in integrations]
    offboarding.save(update_fields=["integration_ids"])
    return _step(offboarding, StepName.CHANNELS_STOPPED, actor=actor,
                 evidence={"integrations": changed})


def _spoke_of(receiver: Any) -> str:
    module = getattr(receiver, "__module__", "") or ""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "apps" else module


@transaction.atomic
def offboarding_credentials_revoke(*, offboarding: Offboarding, actor) -> list[OffboardingStep]:  # type: ignore[no-untyped-def]
    """Steps 2 and 3: tell every spoke to revoke what it issued, keep each receiver's summary.

    Receivers run inside this transaction, so a spoke that fails leaves nothing half-revoked
    and the step unrecorded (run it again). The delivery spoke's answer (bundles and files
    purged) is step 3's evidence.
    """
    offboarding = _lock(offboarding)
    _require(offboarding, StepName.CHANNELS_STOPPED)
    credentials: dict[str, dict[str, Any]] = {}
    files: dict[str, dict[str, Any]] = {}
    for integration in offboarding_integrations(offboarding):
        answers = integration_credentials_revoke.send(
            sender=Integration, integration=integration, actor=actor,
            reason=f"Offboarding: {offboarding.reason}",
        )
        for receiver, summary in answers:
            spoke = _spoke_of(receiver)
            target = files if spoke in _FILE_SPOKES else credentials
            target.setdefault(integration.name, {})[spoke] = summary or {}
    steps = [_step(offboarding, StepName.CREDENTIALS_REVOKED, actor=actor,
                   evidence={"receivers": credentials})]
    files_evidence: dict[str, Any] = {"receivers": files}
    if not files:
        files_evidence["note"] = NOTE_NO_DELIVERY
    steps.append(_step(offboarding, StepName.FILES_PURGED, actor=actor, evidence=files_evidence))
    return steps


def offboarding_run(*, offboarding: Offboarding, actor) -> Offboarding:  # type: ignore[no-untyped-def]
    """Steps 1 to 3 in one go (the button): stop the channels, revoke, purge."""
    done = _done(offboarding)
    if StepName.CHANNELS_STOPPED not in done:
        offboarding_channels_stop(offboarding=offboarding, actor=actor)
    if StepName.CREDENTIALS_REVOKED not in done:
        offboarding_credentials_revoke(offboarding=offboarding, actor=actor)
    offboarding.refresh_from_db()
    return offboarding


# --- step 4: deletion by the vendor -------------------------------------------------------------


def deletion_days(vendor: Vendor, on: dt.date | None = None) -> tuple[int, str]:
    """How long the agreement gives the vendor to delete, and where that number came from."""
    agreement = vendor.current_agreement(on) or vendor.agreements.order_by("-signed_on").first()
    if agreement is not None:
        found = _DAYS.search(agreement.deletion_commitment or "")
        if found:
            return int(found.group(1)), f"agreement {agreement.reference}"
    return DEFAULT_DELETION_DAYS, "default (the agreement names no number of days)"


@transaction.atomic
def offboarding_deletion_request(  # type: ignore[no-untyped-def]
    *, offboarding: Offboarding, actor, requested_to: str, requested_at: dt.datetime | None = None,
    due_on: dt.date | None = None, note: str = "",
) -> OffboardingStep:
    """Step 4a: the school asked the vendor to delete, per the agreement (due date derived
    from its deletion commitment unless given)."""
    offboarding = _lock(offboarding)
    _require(offboarding, StepName.CHANNELS_STOPPED)
    requested_to = (requested_to or "").strip()
    if not requested_to:
        raise OffboardingError("Say who the deletion request went to (a contact or address).")
    at = requested_at or timezone.now()
    days, basis = deletion_days(offboarding.vendor, at.date())
    due = due_on or (timezone.localtime(at).date() + dt.timedelta(days=days))
    offboarding.deletion_requested_at = at
    offboarding.deletion_requested_to = requested_to[:300]
    offboarding.deletion_due_on = due
    offboarding.save(update_fields=["deletion_requested_at", "deletion_requested_to",
                                    "deletion_due_on"])
    return _step(offboarding, StepName.DELETION_REQUESTED, actor=actor, at=at, evidence={
        "requested_at": at.isoformat(), "requested_to": requested_to, "due_on": due.isoformat(),
        "deadline_basis": basis, "note": note.strip(),
    })


def evidence_dir() -> Path:
    return Path(settings.MEDIA_ROOT) / "offboarding"


@transaction.atomic
def offboarding_deletion_confirm(  # type: ignore[no-untyped-def]
    *, offboarding: Offboarding, actor, confirmation: str, confirmed_at: dt.datetime | None = None,
    evidence: IO[bytes] | None = None, evidence_name: str = "",
) -> OffboardingStep:
    """Step 4b: the vendor confirmed deletion; its evidence (a letter, a certificate) is kept
    encrypted at rest, and its SHA-256 goes on the closing certificate."""
    offboarding = _lock(offboarding)
    if offboarding.deletion_requested_at is None:
        raise OffboardingError(ERROR_NOT_REQUESTED)
    confirmation = (confirmation or "").strip()
    if not confirmation:
        raise OffboardingError(ERROR_CONFIRMATION_REQUIRED)
    at = confirmed_at or timezone.now()
    details: dict[str, Any] = {"confirmed_at": at.isoformat(), "confirmation": confirmation}
    if evidence is not None:
        path = evidence_dir() / f"{offboarding.pk}-deletion-evidence.enc"
        digest, size = hashlib.sha256(), 0
        with open_encrypted(path, purpose=EVIDENCE_PURPOSE) as writer:
            while block := evidence.read(64 * 1024):
                digest.update(block)
                size += len(block)
                writer.write(block)
        offboarding.evidence_path = str(path)
        offboarding.evidence_sha256 = digest.hexdigest()
        offboarding.evidence_bytes = size
        offboarding.evidence_name = (evidence_name or "evidence")[:255]
        details.update(evidence_name=offboarding.evidence_name,
                       evidence_sha256=offboarding.evidence_sha256, evidence_bytes=size)
    offboarding.deletion_confirmed_at = at
    offboarding.deletion_confirmation = confirmation
    offboarding.save(update_fields=[
        "deletion_confirmed_at", "deletion_confirmation", "evidence_path", "evidence_sha256",
        "evidence_bytes", "evidence_name",
    ])
    return _step(offboarding, StepName.DELETION_CONFIRMED, actor=actor, at=at, evidence=details)


def deletion_requests_chase(*, now: dt.datetime | None = None) -> list[str]:
    """Beat: deletion requests past their due date and unconfirmed are chased (an email to
    whom the request went, when it is an address, and an alert for governance staff), at
    most once every ``CHASE_INTERVAL_DAYS``. Returns the offboarding ids chased."""
    now = now or timezone.now()
    today = timezone.localtime(now).date()
    overdue = (
        Offboarding.objects.select_related("vendor")
        .filter(status=OffboardingStatus.OPEN, deletion_requested_at__isnull=False,
                deletion_confirmed_at__isnull=True, deletion_due_on__lt=today)
        .filter(Q(last_chased_at__isnull=True)
                | Q(last_chased_at__lte=now - dt.timedelta(days=CHASE_INTERVAL_DAYS)))
    )
    chased = []
    for offboarding in overdue:
        with transaction.atomic():
            locked = Offboarding.objects.select_for_update().get(pk=offboarding.pk)
            locked.chase_count += 1
            locked.last_chased_at = now
            locked.save(update_fields=["chase_count", "last_chased_at"])
            days_late = (today - locked.deletion_due_on).days
            raise_alert(
                rule=ALERT_DELETION_OVERDUE, severity=Severity.WARNING,
                subject=f"{offboarding.vendor.name}: deletion confirmation {days_late} days "
                        "overdue",
                dedup_key=f"{ALERT_DELETION_OVERDUE}:{offboarding.pk}",
                details={"offboarding_id": str(offboarding.pk),
                         "vendor_id": offboarding.vendor_id,
                         "due_on": locked.deletion_due_on.isoformat(),
                         "chase_count": locked.chase_count},
            )
            audit.record(
                actor=None, action="offboarding.deletion_chased", target=locked,
                details={"vendor": offboarding.vendor.name, "days_late": days_late,
                         "chase_count": locked.chase_count},
            )
        if "@" in locked.deletion_requested_to:
            send_mail(
                f"Reminder: confirm deletion of {settings.INTERCHANGE_PUBLIC_URL} data",
                (f"On {locked.deletion_requested_at:%Y-%m-%d} we asked {offboarding.vendor.name}"
                 f" to delete the data it received from us, by {locked.deletion_due_on}. We "
                 "have not yet had your confirmation. Please confirm the deletion, with "
                 "evidence, by reply."),
                settings.DEFAULT_FROM_EMAIL, [locked.deletion_requested_to], fail_silently=True,
            )
        chased.append(str(offboarding.pk))
    return chased


# --- close --------------------------------------------------------------------------------------


def last_successful_access(integration_ids: Iterable[int]) -> tuple[dt.datetime | None, str]:
    """The last request a covered integration was served (status below 400), and its source:
    the recent access log, else the hourly aggregate (to the hour) once the log is pruned."""
    ids = list(integration_ids)
    last = (
        AccessRecord.objects.filter(integration_id__in=ids, status_code__lt=400)
        .aggregate(at=Max("occurred_at"))["at"]
    )
    if last is not None:
        return last, "access_record"
    hour = (
        AccessHourly.objects.filter(integration_id__in=ids, requests__gt=F("errors"))
        .aggregate(at=Max("hour"))["at"]
    )
    return (hour + dt.timedelta(hours=1), "access_hourly") if hour else (None, "none")


def audit_chain_head() -> dict[str, Any]:
    head = AuditChainHead.objects.filter(id=1).first()
    if head is None:
        return {"last_id": 0, "last_hash": "0" * 64, "count": 0}
    return {"last_id": head.last_id, "last_hash": head.last_hash, "count": head.count}


def _certificate_payload(offboarding: Offboarding, integrations: list[Integration]) -> dict:
    steps = [
        {"step": s.step, "title": s.get_step_display(), "done_at": s.done_at.isoformat(),
         "actor": _username(s.actor), "evidence": s.evidence}
        for s in offboarding.steps.select_related("actor").order_by("done_at", "id")
    ]
    return {
        "typ": CERTIFICATE_TYPE,
        "iss": settings.INTERCHANGE_PUBLIC_URL,
        "jti": str(offboarding.pk),
        "iat": int(timezone.now().timestamp()),
        "environment": settings.INTERCHANGE_ENVIRONMENT,
        "vendor": {"id": offboarding.vendor_id, "name": offboarding.vendor.name},
        "integrations": [
            {"id": i.pk, "name": i.name, "kind": i.kind, "environment": i.environment,
             "status": i.status} for i in integrations
        ],
        "trigger": offboarding.trigger,
        "reason": offboarding.reason,
        "decision_at": offboarding.opened_at.isoformat(),
        "decided_by": _username(offboarding.opened_by),
        "closed_at": offboarding.closed_at.isoformat() if offboarding.closed_at else None,
        "closed_by": _username(offboarding.closed_by),
        "last_successful_access_at": (
            offboarding.last_access_at.isoformat() if offboarding.last_access_at else None
        ),
        "seconds_from_decision_to_last_access": offboarding.seconds_to_last_access,
        "deletion": {
            "requested_at": offboarding.deletion_requested_at.isoformat()
            if offboarding.deletion_requested_at else None,
            "due_on": offboarding.deletion_due_on.isoformat()
            if offboarding.deletion_due_on else None,
            "confirmed_at": offboarding.deletion_confirmed_at.isoformat()
            if offboarding.deletion_confirmed_at else None,
            "confirmation": offboarding.deletion_confirmation,
            "evidence_name": offboarding.evidence_name,
            "evidence_sha256": offboarding.evidence_sha256,
            "chase_count": offboarding.chase_count,
        },
        "steps": steps,
        "audit_chain_head": audit_chain_head(),
    }


@transaction.atomic
def offboarding_close(*, offboarding: Offboarding, actor) -> Offboarding:  # type: ignore[no-untyped-def]
    """Close: measure the time to the last successful access, mark the integrations
    ``offboarded`` and sign the certificate over every recorded step."""
    offboarding = _lock(offboarding)
    _require(offboarding, StepName.CHANNELS_STOPPED, StepName.CREDENTIALS_REVOKED,
             StepName.FILES_PURGED, StepName.DELETION_REQUESTED, StepName.DELETION_CONFIRMED)
    integrations = offboarding_integrations(offboarding)
    for integration in integrations:
        if integration.status != IntegrationStatus.OFFBOARDED:
            vendor_services.integration_status_set(
                integration=integration, status=IntegrationStatus.OFFBOARDED, actor=actor,
                reason=f"Offboarded: {offboarding.reason}",
                action="offboarding.integration_offboarded",
            )
    vendor_wide = offboarding.integration_id is None
    if vendor_wide and offboarding.vendor.status != VendorStatus.OFFBOARDED:
        # a whole-vendor offboarding ends the vendor too, once nothing of it is connected
        remaining = offboarding.vendor.integrations.exclude(status=IntegrationStatus.OFFBOARDED)
        if not remaining.exists():
            vendor_services.vendor_offboard(
                vendor=offboarding.vendor, actor=actor, reason=f"Offboarded: {offboarding.reason}"
            )
    now = timezone.now()
    last, source = last_successful_access([i.pk for i in integrations])
    offboarding.last_access_at = last
    offboarding.seconds_to_last_access = (
        int((last - offboarding.opened_at).total_seconds()) if last else None
    )
    offboarding.status = OffboardingStatus.CLOSED
    offboarding.closed_at = now
    offboarding.closed_by = actor
    offboarding.attempts_checked_until = now
    offboarding.save()
    # Refresh integrations so the certificate shows them offboarded.
    integrations = offboarding_integrations(offboarding)
    _step(offboarding, StepName.CLOSED, actor=actor, at=now, evidence={
        "last_successful_access_at": last.isoformat() if last else None,
        "last_access_source": source,
        "seconds_from_decision_to_last_access": offboarding.seconds_to_last_access,
        "integrations_offboarded": [i.pk for i in integrations],
    })
    payload = _certificate_payload(offboarding, integrations)
    token = sign_jwt(purpose=SigningKey.Purpose.EVIDENCE, payload=payload,
                     headers={"typ": "JWT", "cty": CERTIFICATE_TYPE})
    offboarding.certificate = token
    offboarding.certificate_kid = pyjwt.get_unverified_header(token)["kid"]
    offboarding.save(update_fields=["certificate", "certificate_kid"])
    audit.record(
        actor=actor, action="offboarding.certificate_issued", target=offboarding,
        details={"vendor": offboarding.vendor.name, "kid": offboarding.certificate_kid,
                 "certificate_sha256": hashlib.sha256(token.encode()).hexdigest()},
    )
    return offboarding


# --- scheduled checks ---------------------------------------------------------------------------


def contracts_ended_open(*, today: dt.date | None = None) -> list[str]:
    """Beat: a vendor whose contract has ended (and that has no other current contract, and
    does not auto-renew) gets an offboarding opened automatically, and governance an alert.
    Returns the ids of the offboardings opened."""
    today = today or timezone.localdate()
    ended = (
        Contract.objects.select_related("vendor")
        .filter(ends_on__lte=today, auto_renews=False, vendor__status=VendorStatus.ACTIVE)
        .exclude(vendor__in=Contract.objects.current(today).values("vendor"))
        .filter(vendor__integrations__status__in=[
            IntegrationStatus.ACTIVE, IntegrationStatus.SUSPENDED, IntegrationStatus.DRAFT,
        ])
        .exclude(pk__in=Offboarding.objects.filter(contract__isnull=False).values("contract"))
        .exclude(vendor__in=Offboarding.objects.filter(
            status=OffboardingStatus.OPEN, integration__isnull=True).values("vendor"))
        .distinct()
        .order_by("vendor_id", "-ends_on")
    )
    opened: list[str] = []
    seen: set[int] = set()
    for contract in ended:
        if contract.vendor_id in seen:
            continue
        seen.add(contract.vendor_id)
        offboarding = offboarding_open(
            vendor=contract.vendor, actor=None, trigger=OffboardingTrigger.CONTRACT_END,
            contract=contract,
            reason=f"Contract {contract.reference} ended on {contract.ends_on:%Y-%m-%d}.",
        )
        raise_alert(
            rule=ALERT_OPENED, severity=Severity.WARNING,
            subject=f"{contract.vendor.name}: contract {contract.reference} ended; "
                    "offboarding opened",
            dedup_key=f"{ALERT_OPENED}:{offboarding.pk}",
            details={"offboarding_id": str(offboarding.pk), "vendor_id": contract.vendor_id,
                     "contract": contract.reference, "ended_on": contract.ends_on.isoformat()},
        )
        opened.append(str(offboarding.pk))
    return opened


# Access records of covered integrations after close, per offboarding and integration, from
# where the last check stopped: one statement however many offboardings are closed.
ACCESS_AFTER_CLOSE_SQL = """
SELECT o.id, r.integration_id, count(*),
       count(*) FILTER (WHERE r.status_code < 400), max(r.occurred_at),
       array_agg(DISTINCT r.channel)
FROM offboarding_offboarding o
CROSS JOIN LATERAL jsonb_array_elements_text(o.integration_ids) AS covered(id)
JOIN audit_accessrecord r
  ON r.integration_id = covered.id::bigint
 AND r.occurred_at > coalesce(o.attempts_checked_until, o.closed_at)
WHERE o.status = 'closed'
GROUP BY o.id, r.integration_id
ORDER BY o.id, r.integration_id
"""


def access_after_close_check() -> list[dict[str, Any]]:
    """Beat: every attempt by an offboarded integration is alerted (critical if one was
    served). Reads what the spokes record on refusal (access records with the integration
    id: the OneRoster token endpoint and ``/lti/auth`` do). Returns what it alerted."""
    with connection.cursor() as cursor:
        cursor.execute(ACCESS_AFTER_CLOSE_SQL)
        rows = cursor.fetchall()
    if not rows:
        return []
    names = dict(Integration.objects.filter(pk__in={r[1] for r in rows}).values_list("pk", "name"))
    alerted = []
    watermarks: dict[Any, dt.datetime] = {}
    for offboarding_id, integration_id, attempts, served, last_at, channels in rows:
        name = names.get(integration_id, f"integration {integration_id}")
        severity = Severity.CRITICAL if served else Severity.WARNING
        raise_alert(
            rule=ALERT_ACCESS_AFTER_CLOSE, severity=severity,
            subject=f"{name}: {attempts} access attempt(s) after offboarding"
                    + (f", {served} served" if served else ", all refused"),
            dedup_key=f"{ALERT_ACCESS_AFTER_CLOSE}:{offboarding_id}:{integration_id}",
            details={"offboarding_id": str(offboarding_id), "integration_id": integration_id,
                     "attempts": attempts, "served": served, "channels": sorted(channels),
                     "last_attempt_at": last_at.isoformat()},
        )
        alerted.append({"offboarding_id": str(offboarding_id), "integration_id": integration_id,
                        "attempts": attempts, "served": served})
        watermarks[offboarding_id] = max(last_at, watermarks.get(offboarding_id, last_at))
    for offboarding_id, until in watermarks.items():
        Offboarding.objects.filter(pk=offboarding_id).update(attempts_checked_until=until)
    return alerted
