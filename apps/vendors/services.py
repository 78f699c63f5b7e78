"""Writes on vendors and integrations: the status levers.

Suspension is state, not a signal: every spoke asks ``release_for`` (which reads
``Integration.is_live`` from the database) on its next request or run, so a suspension
acts there without anyone reaching into a spoke. Every change is audited with the
reason given, and kept in simple-history.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from apps.audit import audit
from apps.vendors.models import Integration, IntegrationStatus, Vendor, VendorStatus

ERROR_REASON_REQUIRED = "Give a reason: it is kept in the audit log."
ERROR_INTEGRATION_TRANSITION = "Integration {name} cannot go from {old} to {new}."
ERROR_VENDOR_TRANSITION = "Vendor {name} cannot go from {old} to {new}."
ERROR_VENDOR_STILL_CONNECTED = (
    "Vendor {name} still has {count} integration(s) not offboarded; offboard them first."
)


class VendorServiceError(ValueError):
    """A lever was pulled in a state that does not allow it; the message says why."""


# Which integration statuses each lever may start from.
_INTEGRATION_TRANSITIONS: dict[str, frozenset[str]] = {
    IntegrationStatus.ACTIVE: frozenset({IntegrationStatus.DRAFT, IntegrationStatus.SUSPENDED}),
    IntegrationStatus.SUSPENDED: frozenset({IntegrationStatus.ACTIVE, IntegrationStatus.DRAFT}),
    IntegrationStatus.OFFBOARDING: frozenset(
        {IntegrationStatus.ACTIVE, IntegrationStatus.SUSPENDED, IntegrationStatus.DRAFT}
    ),
    IntegrationStatus.OFFBOARDED: frozenset({IntegrationStatus.OFFBOARDING}),
}


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise VendorServiceError(ERROR_REASON_REQUIRED)
    return reason


@transaction.atomic
def integration_status_set(  # type: ignore[no-untyped-def]
    *, integration: Integration, status: str, actor, reason: str, action: str
) -> Integration:
    """Move an integration to ``status`` (guarded by the transition table), audited."""
    reason = _reason(reason)
    locked = Integration.objects.select_for_update().get(pk=integration.pk)
    old = locked.status
    if old not in _INTEGRATION_TRANSITIONS[status]:
        raise VendorServiceError(
            ERROR_INTEGRATION_TRANSITION.format(name=locked.name, old=old, new=status)
        )
    locked.status = status
    locked.status_reason = reason
    locked.status_changed_at = timezone.now()
    locked._change_reason = reason  # simple-history keeps it with the historical row
    locked.save(update_fields=["status", "status_reason", "status_changed_at", "updated_at"])
    audit.record(
        actor=actor, action=action, target=locked,
        details={"integration": locked.name, "vendor_id": locked.vendor_id, "from": old,
                 "to": status, "reason": reason},
    )
    integration.refresh_from_db()
    return locked


def integration_activate(*, integration: Integration, actor, reason: str) -> Integration:  # type: ignore[no-untyped-def]
    return integration_status_set(
        integration=integration, status=IntegrationStatus.ACTIVE, actor=actor, reason=reason,
        action="vendors.integration_activated",
    )


def integration_suspend(*, integration: Integration, actor, reason: str) -> Integration:  # type: ignore[no-untyped-def]
    """Stop every channel serving this integration from its next request or run."""
    return integration_status_set(
        integration=integration, status=IntegrationStatus.SUSPENDED, actor=actor, reason=reason,
        action="vendors.integration_suspended",
    )


def integration_resume(*, integration: Integration, actor, reason: str) -> Integration:  # type: ignore[no-untyped-def]
    """Lift a suspension. Only a suspended integration can be resumed (a draft is activated)."""
    if integration.status != IntegrationStatus.SUSPENDED:
        raise VendorServiceError(
            ERROR_INTEGRATION_TRANSITION.format(
                name=integration.name, old=integration.status, new=IntegrationStatus.ACTIVE
            )
        )
    return integration_status_set(
        integration=integration, status=IntegrationStatus.ACTIVE, actor=actor, reason=reason,
        action="vendors.integration_resumed",
    )


@transaction.atomic
def _vendor_status_set(*, vendor: Vendor, status: str, allowed_from: set[str], actor,  # type: ignore[no-untyped-def]
                       reason: str, action: str) -> Vendor:
    reason = _reason(reason)
    locked = Vendor.objects.select_for_update().get(pk=vendor.pk)
    old = locked.status
    if old not in allowed_from:
        raise VendorServiceError(
            ERROR_VENDOR_TRANSITION.format(name=locked.name, old=old, new=status)
        )
    locked.status = status
    locked.status_reason = reason
    locked.status_changed_at = timezone.now()
    locked._change_reason = reason
    locked.save(update_fields=["status", "status_reason", "status_changed_at", "updated_at"])
    audit.record(
        actor=actor, action=action, target=locked,
        details={"vendor": locked.name, "from": old, "to": status, "reason": reason,
                 "integrations": locked.integrations.count()},
    )
    vendor.refresh_from_db()
    return locked


def vendor_suspend(*, vendor: Vendor, actor, reason: str) -> Vendor:  # type: ignore[no-untyped-def]
    """Suspend every integration of the vendor at once (their own statuses are kept, so
    resuming the vendor restores exactly what was live before)."""
    return _vendor_status_set(
        vendor=vendor, status=VendorStatus.SUSPENDED, allowed_from={VendorStatus.ACTIVE},
        actor=actor, reason=reason, action="vendors.vendor_suspended",
    )


def vendor_resume(*, vendor: Vendor, actor, reason: str) -> Vendor:  # type: ignore[no-untyped-def]
    return _vendor_status_set(
        vendor=vendor, status=VendorStatus.ACTIVE, allowed_from={VendorStatus.SUSPENDED},
        actor=actor, reason=reason, action="vendors.vendor_resumed",
    )


def vendor_offboard(*, vendor: Vendor, actor, reason: str) -> Vendor:  # type: ignore[no-untyped-def]
    """Mark the vendor itself offboarded, once every integration of it is; final (no lever
    leads back: a returning vendor is onboarded again, with fresh paperwork and approvals)."""
    open_integrations = vendor.integrations.exclude(status=IntegrationStatus.OFFBOARDED)
    if open_integrations.exists():
        raise VendorServiceError(ERROR_VENDOR_STILL_CONNECTED.format(
            name=vendor.name, count=open_integrations.count()))
    return _vendor_status_set(
        vendor=vendor, status=VendorStatus.OFFBOARDED,
        allowed_from={VendorStatus.ACTIVE, VendorStatus.SUSPENDED},
        actor=actor, reason=reason, action="vendors.vendor_offboarded",
    )
