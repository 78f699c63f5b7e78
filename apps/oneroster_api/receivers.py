"""The OneRoster provider's answer to ``integration_credentials_revoke`` (offboarding).

Governance never reaches into this spoke; it sends the signal, and this receiver revokes
what the spoke issued for the integration: its OAuth application (client), every secret and
every access token. The next token request and the next API call with an old token get 401.
"""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from apps.oneroster_api.models import OneRosterClient
from apps.oneroster_api.services import oauth_client_revoke
from apps.vendors.signals import integration_credentials_revoke


@receiver(integration_credentials_revoke, dispatch_uid="oneroster_api.credentials_revoke")
def oneroster_credentials_revoke(sender, *, integration, actor=None, reason: str = "",  # type: ignore[no-untyped-def]
                                 **kwargs: Any) -> dict[str, int]:
    """Revoke the integration's client, secrets and tokens; return the counts (evidence)."""
    client = OneRosterClient.objects.filter(integration=integration).first()
    if client is None:
        return {"oauth_clients": 0, "secrets": 0, "tokens": 0}
    if client.revoked_at is not None:  # revoked earlier (by hand): nothing left to revoke
        return {"oauth_clients": 0, "secrets": 0, "tokens": 0, "already_revoked": 1}
    secrets = client.secrets.filter(revoked_at__isnull=True).count()
    tokens = oauth_client_revoke(integration=integration, actor=actor,
                                 reason=reason or "Offboarding")
    return {"oauth_clients": 1, "secrets": secrets, "tokens": tokens}
