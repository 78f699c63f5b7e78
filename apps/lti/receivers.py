"""The LTI platform's answer to ``integration_credentials_revoke`` (offboarding).

Launches are already refused once the integration is no longer live (every launch asks the
release policy). This receiver ends what is in flight for the tool: unused launch hints and
Deep Linking requests expire now, and LTI service access tokens are revoked. Registrations
and deployments are kept as records, not deleted: the integration's state refuses them, and
their history stays for the auditors.
"""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver
from django.utils import timezone

from apps.audit import audit
from apps.lti.models import DeepLinkingRequest, LaunchHint, ServiceToken, ToolRegistration
from apps.vendors.signals import integration_credentials_revoke


@receiver(integration_credentials_revoke, dispatch_uid="lti.credentials_revoke")
def lti_credentials_revoke(sender, *, integration, actor=None, reason: str = "",  # type: ignore[no-untyped-def]
                           **kwargs: Any) -> dict[str, int]:
    """End the tool's launches in flight and its service tokens; return the counts."""
    registration = ToolRegistration.objects.filter(integration=integration).first()
    if registration is None:
        return {"registrations": 0, "deployments": 0}
    now = timezone.now()
    hints = LaunchHint.objects.filter(
        registration=registration, used_at__isnull=True, expires_at__gt=now
    ).update(expires_at=now)
    deep_links = DeepLinkingRequest.objects.filter(
        registration=registration, used_at__isnull=True, expires_at__gt=now
    ).update(expires_at=now)
    summary = {
        "registrations": 1,
        "deployments": registration.deployments.count(),
        "launch_hints_expired": hints,
        "deep_linking_requests_expired": deep_links,
        "service_tokens_revoked": ServiceToken.objects.filter(
            registration=registration, revoked_at__isnull=True).update(revoked_at=now),
    }
    audit.record(actor=actor, action="lti.credentials_revoked", target=integration,
                 details={"integration": integration.name, "client_id": registration.client_id,
                          "reason": reason, **summary})
    return summary
