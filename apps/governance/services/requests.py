"""Scope requests and their approval: every rule, in one place, for the admin and the CLI.

The admin, ``approve_scope_request`` and any future API call these functions and nothing
else, so there is no back door: a rule refused here is refused everywhere, with the same
message (the ``ERROR_*`` constants, which tests assert against).

The rules (issue 4):

* the requester never decides their own request;
* sensitive requests (demographic, special-category or credential data, gradebook writes)
  need two approvals by two different people; one person's decision is recorded once
  (a database constraint), so nobody is counted twice;
* approving is refused when the vendor has no current data-processing agreement, no
  current security review, or when the request asks for more than the agreement's
  schedule of data;
* sensitive requests carry a DPIA reference, or the recorded reason none is needed;
* an approval lasts ``duration_days`` (twelve months by default), is flagged for
  recertification and the vendor's contacts are told before it expires
  (``scope_requests_send_expiry_notices``, run daily), and then it expires
  (``scope_requests_expire``; the grant already stops at ``expires_at`` by itself).

Every decision is audited and kept in simple-history.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from apps.alerts import alerts
from apps.audit import audit
from apps.audit.models import FieldClass
from apps.governance import classification, scopes
from apps.governance.models import (
    DEFAULT_DURATION_DAYS,
    MAX_DURATION_DAYS,
    ScopeApproval,
    ScopeDecision,
    ScopeRequest,
    ScopeRequestStatus,
)
from apps.vendors.models import ContactRole, Integration, IntegrationStatus

logger = logging.getLogger(__name__)

PERMISSION_REQUEST = "governance.add_scoperequest"
PERMISSION_DECIDE = "governance.approve_scoperequest"

# How long before expiry the approval is flagged and the vendor told.
EXPIRY_NOTICE_DAYS = 30

# --- messages (tests assert on these) ---------------------------------------------------------
ERROR_NOT_ALLOWED_TO_REQUEST = "You are not allowed to raise scope requests."
ERROR_NOT_ALLOWED_TO_DECIDE = "You are not allowed to approve or deny scope requests."
ERROR_SELF_APPROVAL = (
    "You raised this request, so you cannot decide it: another member of governance staff must."
)
ERROR_ALREADY_DECIDED = (
    "You have already approved this request. Sensitive data needs a second approval by a "
    "different person."
)
ERROR_NOT_PENDING = "Request #{id} is {status}; only a pending request can be decided."
ERROR_REASON_REQUIRED = "Give a reason: it is kept in the audit log and shown to the requester."
ERROR_JUSTIFICATION_REQUIRED = "Say why the integration needs this data."
ERROR_NOTHING_REQUESTED = "Ask for at least one service, scope, field class, field or claim."
ERROR_UNKNOWN = "Unknown {what}: {items}."
ERROR_DURATION = f"The duration must be between 1 and {MAX_DURATION_DAYS} days."
ERROR_DPIA_REQUIRED = (
    "This request includes sensitive data ({what}): give a DPIA reference, or record why "
    "none is needed."
)
ERROR_NO_AGREEMENT = (
    "{vendor} has no current data-processing agreement: record a signed agreement before "
    "approving."
)
ERROR_NO_SECURITY_REVIEW = (
    "{vendor} has no current security review (the last one is missing, failed or stale): "
    "review the vendor before approving."
)
ERROR_EXCEEDS_SCHEDULE = (
    "The request exceeds the schedule of data in agreement {agreement}: {items} "
    "not allowed. Amend the agreement or narrow the request."
)
ERROR_INTEGRATION_CLOSED = "Integration {name} is {status}: it cannot be granted anything."
ERROR_NOT_WITHDRAWABLE = (
    "Request #{id} is {status}; only pending or approved requests can be withdrawn."
)
ERROR_NOT_YOURS_TO_WITHDRAW = (
    "Only the requester or governance staff can withdraw a request."
)
ERROR_NOT_RENEWABLE = "Only an approved or expired request can be recertified."

# LTI personal claims are released from these canonical fields.
CLAIM_FIELDS: dict[str, tuple[str, ...]] = {
    "name": ("users.given_name", "users.family_name"),
    "given_name": ("users.given_name",),
    "family_name": ("users.family_name",),
    "email": ("users.email",),
}
DEMOGRAPHICS_SCOPE = scopes.OR + "roster-demographics.readonly"


class ScopeRequestRefused(ValueError):
    """A rule refused the action; ``str(exc)`` is the reason to show a person."""


# --- reading a request's content ----------------------------------------------------------------


@dataclass(frozen=True)
class Sensitivity:
    """Why a request is sensitive (empty when it is not)."""

    classes: frozenset[str]
    fields: frozenset[str]
    gradebook_writes: frozenset[str]
    demographics_scope: bool

    @property
    def is_sensitive(self) -> bool:
        return bool(self.classes or self.fields or self.gradebook_writes
                    or self.demographics_scope)

    def describe(self) -> str:
        parts = sorted(self.classes) + sorted(self.fields)
        if self.gradebook_writes:
            parts.append("gradebook writes")
        if self.demographics_scope and not self.classes:
            parts.append("the demographics scope")
        return ", ".join(parts)


def sensitivity_of(
    *, field_classes: Iterable[str], fields: Iterable[str], scopes_: Iterable[str],
    classification_map: dict[str, str] | None = None,
) -> Sensitivity:
    cmap = classification.classification_map() if classification_map is None else classification_map
    return Sensitivity(
        classes=frozenset(field_classes) & classification.SENSITIVE_CLASSES,
        fields=frozenset(f for f in fields if cmap.get(f) in classification.SENSITIVE_CLASSES),
        gradebook_writes=frozenset(scopes_) & scopes.GRADEBOOK_WRITE_SCOPES,
        demographics_scope=DEMOGRAPHICS_SCOPE in set(scopes_),
    )


def request_sensitivity(request: ScopeRequest) -> Sensitivity:
    return sensitivity_of(field_classes=request.field_classes, fields=request.fields,
                          scopes_=request.scopes)


def approvals_required(request: ScopeRequest) -> int:
    """Two for sensitive data, one otherwise; never lower than fixed at request time."""
    return max(request.approvals_required, 2 if request_sensitivity(request).is_sensitive else 1)


def schedule_excess(request: ScopeRequest, agreement) -> list[str]:  # type: ignore[no-untyped-def]
    """What the request asks for beyond the agreement's schedule of data.

    Identifier columns travel with any released entity, so the class is always allowed.
    A single field is allowed when its class is in the schedule or the schedule names it.
    """
    cmap = classification.classification_map()
    allowed_classes = set(agreement.allowed_field_classes) | {FieldClass.IDENTIFIER.value}
    allowed_fields = set(agreement.allowed_fields)
    excess = [f"class {c}" for c in sorted(set(request.field_classes) - allowed_classes)]
    wanted_fields = set(request.fields)
    for claim in request.claims:
        wanted_fields.update(CLAIM_FIELDS.get(claim, ()))
    for name in sorted(wanted_fields):
        if cmap.get(name) not in allowed_classes and name not in allowed_fields:
            excess.append(f"field {name}")
    return excess


def approval_blockers(request: ScopeRequest, *, on: dt.date | None = None) -> list[str]:
    """Why approving ``request`` would be refused today, whoever approves it (empty: nothing
    in the vendor's paperwork or the request stops it). Shown in the admin before anyone
    clicks, and checked again inside ``scope_request_approve``."""
    integration = request.integration
    vendor = integration.vendor
    blockers = []
    if integration.status in (IntegrationStatus.OFFBOARDING, IntegrationStatus.OFFBOARDED):
        blockers.append(ERROR_INTEGRATION_CLOSED.format(
            name=integration.name, status=integration.get_status_display().lower()))
    agreement = vendor.current_agreement(on)
    if agreement is None:
        blockers.append(ERROR_NO_AGREEMENT.format(vendor=vendor.name))
    if vendor.current_security_review(on) is None:
        blockers.append(ERROR_NO_SECURITY_REVIEW.format(vendor=vendor.name))
    if agreement is not None:
        excess = schedule_excess(request, agreement)
        if excess:
            blockers.append(ERROR_EXCEEDS_SCHEDULE.format(
                agreement=agreement.reference, items=", ".join(excess)))
    sensitivity = request_sensitivity(request)
    if sensitivity.is_sensitive and not (
        request.dpia_reference.strip() or request.dpia_not_needed_reason.strip()
    ):
        blockers.append(ERROR_DPIA_REQUIRED.format(what=sensitivity.describe()))
    return blockers


# --- creating -------------------------------------------------------------------------------


def _clean(values: Iterable[str]) -> list[str]:
    return sorted({v.strip() for v in values if v and v.strip()})


def scope_request_validate(
    *, services: Iterable[str] = (), scopes_: Iterable[str] = (),
    field_classes: Iterable[str] = (), fields: Iterable[str] = (), claims: Iterable[str] = (),
    justification: str = "", duration_days: int = DEFAULT_DURATION_DAYS,
    dpia_reference: str = "", dpia_not_needed_reason: str = "",
) -> list[str]:
    """Every problem with a request's content (empty: it may be raised)."""
    problems = []
    checks = (
        ("service", services, scopes.SERVICES),
        ("scope", scopes_, scopes.SCOPES),
        ("field class", field_classes, FieldClass.values),
        ("field", fields, classification.FIELD_CLASSES),
        ("claim", claims, scopes.CLAIMS),
    )
    for what, values, known in checks:
        unknown = sorted(set(values) - set(known))
        if unknown:
            problems.append(ERROR_UNKNOWN.format(what=what, items=", ".join(unknown)))
    if not any((list(services), list(scopes_), list(field_classes), list(fields), list(claims))):
        problems.append(ERROR_NOTHING_REQUESTED)
    if not (justification or "").strip():
        problems.append(ERROR_JUSTIFICATION_REQUIRED)
    if not 1 <= int(duration_days) <= MAX_DURATION_DAYS:
        problems.append(ERROR_DURATION)
    if not problems:
        sensitivity = sensitivity_of(field_classes=field_classes, fields=fields, scopes_=scopes_)
        if sensitivity.is_sensitive and not (
            dpia_reference.strip() or dpia_not_needed_reason.strip()
        ):
            problems.append(ERROR_DPIA_REQUIRED.format(what=sensitivity.describe()))
    return problems


@transaction.atomic
def scope_request_create(  # type: ignore[no-untyped-def]
    *, integration: Integration, requested_by, justification: str,
    services: Iterable[str] = (), scopes_: Iterable[str] = (),
    field_classes: Iterable[str] = (), fields: Iterable[str] = (), claims: Iterable[str] = (),
    org_sourced_ids: Iterable[str] = (), duration_days: int = DEFAULT_DURATION_DAYS,
    dpia_reference: str = "", dpia_not_needed_reason: str = "",
    renews: ScopeRequest | None = None,
) -> ScopeRequest:
    """Raise a request for ``integration``; it waits in the approval queue."""
    if not requested_by.has_perm(PERMISSION_REQUEST):
        raise ScopeRequestRefused(ERROR_NOT_ALLOWED_TO_REQUEST)
    content = {
        "services": _clean(services), "scopes": _clean(scopes_),
        "field_classes": _clean(field_classes), "fields": _clean(fields),
        "claims": _clean(claims),
    }
    problems = scope_request_validate(
        services=content["services"], scopes_=content["scopes"],
        field_classes=content["field_classes"], fields=content["fields"],
        claims=content["claims"], justification=justification, duration_days=duration_days,
        dpia_reference=dpia_reference, dpia_not_needed_reason=dpia_not_needed_reason,
    )
    if problems:
        raise ScopeRequestRefused(" ".join(problems))
    sensitivity = sensitivity_of(field_classes=content["field_classes"],
                                 fields=content["fields"], scopes_=content["scopes"])
    request = ScopeRequest.objects.create(
        integration=integration,
        requested_by=requested_by,
        org_sourced_ids=_clean(org_sourced_ids),
        justification=justification.strip(),
        duration_days=int(duration_days),
        dpia_reference=dpia_reference.strip(),
        dpia_not_needed_reason=dpia_not_needed_reason.strip(),
        approvals_required=2 if sensitivity.is_sensitive else 1,
        renews=renews,
        **content,
    )
    audit.record(
        actor=requested_by, action="governance.scope_request_created", target=request,
        details={"integration": integration.name, "sensitive": sensitivity.is_sensitive,
                 "renews": renews.pk if renews else None, **content,
                 "org_sourced_ids": request.org_sourced_ids,
                 "duration_days": request.duration_days},
    )
    return request


def scope_request_recertify(*, request: ScopeRequest, requested_by) -> ScopeRequest:  # type: ignore[no-untyped-def]
    """A new pending request with the same content, linked to the approval it renews."""
    if request.status not in (ScopeRequestStatus.APPROVED, ScopeRequestStatus.EXPIRED):
        raise ScopeRequestRefused(ERROR_NOT_RENEWABLE)
    return scope_request_create(
        integration=request.integration, requested_by=requested_by,
        justification=f"Recertification of request #{request.pk}: {request.justification}",
        services=request.services, scopes_=request.scopes, field_classes=request.field_classes,
        fields=request.fields, claims=request.claims, org_sourced_ids=request.org_sourced_ids,
        duration_days=request.duration_days, dpia_reference=request.dpia_reference,
        dpia_not_needed_reason=request.dpia_not_needed_reason, renews=request,
    )


# --- deciding -------------------------------------------------------------------------------


def decision_refusal(request: ScopeRequest, user, *, decision: str) -> str | None:  # type: ignore[no-untyped-def]
    """The reason ``user`` may not make ``decision`` on ``request`` now, or None."""
    if request.status != ScopeRequestStatus.PENDING:
        return ERROR_NOT_PENDING.format(id=request.pk, status=request.status)
    if not user.has_perm(PERMISSION_DECIDE):
        return ERROR_NOT_ALLOWED_TO_DECIDE
    if user.pk == request.requested_by_id:
        return ERROR_SELF_APPROVAL
    if request.decisions.filter(approver=user).exists():
        return ERROR_ALREADY_DECIDED
    if decision == ScopeDecision.APPROVE:
        blockers = approval_blockers(request)
        if blockers:
            return " ".join(blockers)
    return None


def _decide(*, request: ScopeRequest, approver, decision: str, reason: str) -> ScopeRequest:  # type: ignore[no-untyped-def]
    reason = (reason or "").strip()
    with transaction.atomic():
        # Lock the request: two approvers deciding at the same moment are serialised, so
        # the second sees the first's approval and the count is exact.
        locked = (
            ScopeRequest.objects.select_for_update()
            .select_related("integration__vendor").get(pk=request.pk)
        )
        refusal = decision_refusal(locked, approver, decision=decision)
        if refusal is None and not reason:
            refusal = ERROR_REASON_REQUIRED
        if refusal is not None:
            raise ScopeRequestRefused(refusal)
        try:
            with transaction.atomic():
                ScopeApproval.objects.create(
                    request=locked, approver=approver, decision=decision, reason=reason
                )
        except IntegrityError:
            raise ScopeRequestRefused(ERROR_ALREADY_DECIDED) from None
        now = timezone.now()
        required = approvals_required(locked)
        approvers = list(
            locked.decisions.filter(decision=ScopeDecision.APPROVE)
            .values_list("approver__username", flat=True).distinct()
        )
        details = {
            "integration": locked.integration.name, "decision": decision, "reason": reason,
            "approvals": len(approvers), "approvals_required": required,
        }
        locked.approvals_required = required
        if decision == ScopeDecision.DENY:
            locked.status = ScopeRequestStatus.DENIED
            locked.decided_at = now
            action = "governance.scope_request_denied"
        elif len(approvers) >= required:
            locked.status = ScopeRequestStatus.APPROVED
            locked.decided_at = locked.approved_at = now
            locked.expires_at = now + dt.timedelta(days=locked.duration_days)
            details.update(approvers=approvers, expires_at=locked.expires_at.isoformat(),
                           scopes=locked.scopes, field_classes=locked.field_classes,
                           fields=locked.fields, claims=locked.claims,
                           services=locked.services)
            action = "governance.scope_request_approved"
        else:
            action = "governance.scope_request_approval_recorded"
        locked._change_reason = f"{decision}: {reason}"[:100]
        locked.save()
        audit.record(actor=approver, action=action, target=locked, details=details)
    request.refresh_from_db()
    return locked


def scope_request_approve(*, request: ScopeRequest, approver, reason: str) -> ScopeRequest:  # type: ignore[no-untyped-def]
    """Record ``approver``'s approval; the request is approved once enough people agree."""
    return _decide(request=request, approver=approver, decision=ScopeDecision.APPROVE,
                   reason=reason)


def scope_request_deny(*, request: ScopeRequest, approver, reason: str) -> ScopeRequest:  # type: ignore[no-untyped-def]
    """Deny the request (one eligible person suffices to say no)."""
    return _decide(request=request, approver=approver, decision=ScopeDecision.DENY,
                   reason=reason)


@transaction.atomic
def scope_request_withdraw(*, request: ScopeRequest, actor, reason: str) -> ScopeRequest:  # type: ignore[no-untyped-def]
    """Withdraw a pending request, or end an approved one now (its grant stops at once)."""
    reason = (reason or "").strip()
    if not reason:
        raise ScopeRequestRefused(ERROR_REASON_REQUIRED)
    locked = ScopeRequest.objects.select_for_update().get(pk=request.pk)
    if locked.status not in (ScopeRequestStatus.PENDING, ScopeRequestStatus.APPROVED):
        raise ScopeRequestRefused(
            ERROR_NOT_WITHDRAWABLE.format(id=locked.pk, status=locked.status))
    if actor.pk != locked.requested_by_id and not actor.has_perm(PERMISSION_DECIDE):
        raise ScopeRequestRefused(ERROR_NOT_YOURS_TO_WITHDRAW)
    was = locked.status
    locked.status = ScopeRequestStatus.WITHDRAWN
    locked.withdrawn_at = timezone.now()
    locked.withdrawn_by = actor
    locked.withdrawn_reason = reason
    if locked.decided_at is None:
        locked.decided_at = locked.withdrawn_at
    locked._change_reason = f"withdrawn: {reason}"[:100]
    locked.save()
    audit.record(
        actor=actor, action="governance.scope_request_withdrawn", target=locked,
        details={"integration": locked.integration.name, "was": was, "reason": reason},
    )
    request.refresh_from_db()
    return locked


# --- time -----------------------------------------------------------------------------------


def scope_requests_expire(*, now: dt.datetime | None = None) -> list[int]:
    """Mark approvals past their expiry as expired (the grant already ignores them)."""
    now = now or timezone.now()
    expired = []
    with transaction.atomic():
        due = list(
            ScopeRequest.objects.select_for_update(skip_locked=True)
            .filter(status=ScopeRequestStatus.APPROVED, expires_at__lte=now)
            .select_related("integration")
        )
        for request in due:
            request.status = ScopeRequestStatus.EXPIRED
            request._change_reason = "expired"
            request.save(update_fields=["status"])
            audit.record(
                actor=None, action="governance.scope_request_expired", target=request,
                details={"integration": request.integration.name,
                         "expired_at": request.expires_at.isoformat()},
            )
            expired.append(request.pk)
    return expired


def _notice_recipients(request: ScopeRequest) -> list[str]:
    contacts = request.integration.vendor.contacts.all()
    wanted = [c.email for c in contacts
              if c.role in (ContactRole.PRIMARY, ContactRole.DATA_PROTECTION)]
    return sorted(set(wanted or [c.email for c in contacts]))


def _admin_url(request: ScopeRequest) -> str:
    path = reverse("admin:governance_scoperequest_change", args=[request.pk])
    return settings.INTERCHANGE_PUBLIC_URL + path


EXPIRY_NOTICE_SUBJECT = "Interchange: approval for {integration} expires on {date}"
EXPIRY_NOTICE_BODY = """Hello,

The school's approval for the integration "{integration}" ({vendor}) expires on {date}.
It covers: {summary}.

After that date the integration receives nothing under this approval. If the school
should keep sharing this data, reply to the school's data protection officer, who will
decide whether to recertify it.

This message was sent by the school's Interchange portal.
"""


def _summary(request: ScopeRequest) -> str:
    parts = [scopes.SERVICES.get(s, s) for s in request.services]
    parts += [scopes.short_scope(s) for s in request.scopes]
    parts += [f"{c} data" for c in request.field_classes] + list(request.fields)
    parts += [f"LTI claim {c}" for c in request.claims]
    return ", ".join(parts) or "nothing"


def scope_requests_send_expiry_notices(
    *, now: dt.datetime | None = None, days: int = EXPIRY_NOTICE_DAYS
) -> list[int]:
    """Flag approvals expiring within ``days`` for recertification, tell the vendor's contacts
    by email once, and raise an alert for governance staff. Idempotent."""
    now = now or timezone.now()
    flagged = []
    due = list(
        ScopeRequest.objects.live(now)
        .filter(status=ScopeRequestStatus.APPROVED, expires_at__lte=now + dt.timedelta(days=days),
                expiry_notice_sent_at__isnull=True)
        .select_related("integration__vendor").order_by("expires_at")
    )
    for request in due:
        date = timezone.localdate(request.expires_at).isoformat()
        recipients = _notice_recipients(request)
        sent = 0
        if recipients:
            try:
                sent = send_mail(
                    EXPIRY_NOTICE_SUBJECT.format(integration=request.integration.name,
                                                 date=date),
                    EXPIRY_NOTICE_BODY.format(
                        integration=request.integration.name,
                        vendor=request.integration.vendor.name, date=date,
                        summary=_summary(request),
                    ),
                    settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=False,
                )
            except Exception as exc:  # noqa: BLE001 - any mail failure: alert, retry next run
                logger.warning("expiry notice for request %s failed: %s", request.pk, exc)
                alerts.raise_alert(
                    rule="governance.expiry_notice_failed",
                    subject=f"Could not email the expiry notice for approval #{request.pk}",
                    dedup_key=f"governance.expiry_notice_failed:{request.pk}",
                    details={"request": request.pk, "error": type(exc).__name__},
                    evidence=[{"label": f"Approval #{request.pk}", "url": _admin_url(request)}],
                )
                continue
        with transaction.atomic():
            ScopeRequest.objects.filter(pk=request.pk).update(
                recertification_flagged_at=now, expiry_notice_sent_at=now
            )
            audit.record(
                actor=None, action="governance.scope_request_expiry_notice", target=request,
                details={"integration": request.integration.name, "expires_at": date,
                         "notified": len(recipients) if sent else 0},
            )
        alerts.raise_alert(
            rule="governance.approval_expiring",
            subject=f"Approval #{request.pk} for {request.integration.name} expires on {date}",
            dedup_key=f"governance.approval_expiring:{request.pk}",
            details={"request": request.pk, "integration": request.integration.name,
                     "expires_at": date, "vendor_notified": bool(recipients)},
            evidence=[{"label": f"Approval #{request.pk}", "url": _admin_url(request)}],
        )
        flagged.append(request.pk)
    return flagged


def scope_requests_sweep(*, now: dt.datetime | None = None) -> dict[str, list[int]]:
    """The daily task: expiry notices, then expiries."""
    return {
        "notified": scope_requests_send_expiry_notices(now=now),
        "expired": scope_requests_expire(now=now),
    }
