"""Answers to governance's signals (connected in DeliveryConfig.ready)."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from apps.vendors.signals import integration_credentials_revoke


@receiver(integration_credentials_revoke, dispatch_uid="delivery.revoke_destinations")
def revoke_destinations(sender: Any, *, integration: Any, actor: Any = None, reason: str = "",
                        **kwargs: Any) -> dict[str, int]:
    """Disable the integration's destination, expire its links, shred its bundles."""
    from apps.delivery.services import destinations_revoke

    return destinations_revoke(integration=integration, actor=actor, reason=reason)
