"""Writes of the OneRoster provider: issuing, rotating and revoking client credentials.

Every change is audited. A secret is returned once, by the service that makes it, and only
its digest is stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from oauth2_provider.models import AccessToken, get_application_model

from apps.audit import audit
from apps.oneroster_api.models import ClientSecret, OneRosterClient
from apps.vendors.models import Integration, IntegrationKind
from portal.db import prepared

ERROR_NOT_REST = "Integration {name} is not a OneRoster REST integration."
ERROR_NOT_APPROVED = (
    "Integration {name} has no live approval for OneRoster rostering or gradebook; "
    "credentials are issued "
    "once it is approved."
)
OAUTH_SERVICES = frozenset({"oneroster.rostering", "oneroster.gradebook"})
ERROR_ALREADY_ISSUED = "Integration {name} already has a client; rotate its secret instead."
ERROR_NO_CLIENT = "Integration {name} has no OneRoster client."
ERROR_REVOKED = "The client of integration {name} is revoked."
ERROR_OVERLAP = "The overlap must be between 0 and {max} hours."
ERROR_REASON_REQUIRED = "Give a reason: it is kept in the audit log."

DEFAULT_OVERLAP_HOURS = 72
MAX_OVERLAP_HOURS = 30 * 24
SECRET_BYTES = 32


class CredentialError(ValueError):
    """A credential operation that is not allowed now; the message says why."""


@dataclass(frozen=True)
class IssuedCredentials:
    """What the vendor is given, once."""

    client_id: str
    client_secret: str
    token_url: str
    base_url: str


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def _urls() -> tuple[str, str]:
    public = settings.INTERCHANGE_PUBLIC_URL
    return f"{public}/oauth/token", f"{public}/ims/oneroster/rostering/v1p2"


def _store_secret(client: OneRosterClient, actor) -> str:  # type: ignore[no-untyped-def]
    secret = _new_secret()
    ClientSecret.objects.create(
        client=client, digest=secret_digest(secret), hint=secret[:6], created_by=actor
    )
    return secret


@transaction.atomic
def oauth_client_issue(*, integration: Integration, actor) -> IssuedCredentials:  # type: ignore[no-untyped-def]
    """Create the OAuth 2 client of an approved OneRoster REST integration.

    The client id carries the environment (``sandbox-…``) so a credential is recognisably
    refused in another deployment. Returns the secret: it is not stored and cannot be
    shown again (rotate to get a new one).
    """
    from apps.governance.selectors.grant import effective_grant

    integration = Integration.objects.select_for_update().get(pk=integration.pk)
    if integration.kind != IntegrationKind.ONEROSTER_REST:
        raise CredentialError(ERROR_NOT_REST.format(name=integration.name))
    # A gradebook-only client (the SIS reading results back) needs credentials too.
    if not OAUTH_SERVICES & set(effective_grant(integration).services):
        raise CredentialError(ERROR_NOT_APPROVED.format(name=integration.name))
    if OneRosterClient.objects.filter(integration=integration).exists():
        raise CredentialError(ERROR_ALREADY_ISSUED.format(name=integration.name))
    Application = get_application_model()
    application = Application.objects.create(
        name=f"OneRoster REST: {integration.name}"[:255],
        client_id=f"{integration.environment}-{secrets.token_urlsafe(24)}",
        # Never used: the secrets are checked against ClientSecret. An unknown random value
        # (hashed by the toolkit) so that the toolkit's own check can never succeed.
        client_secret=_new_secret(),
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        skip_authorization=True,
    )
    client = OneRosterClient.objects.create(
        integration=integration, application=application, issued_by=actor
    )
    secret = _store_secret(client, actor)
    audit.record(
        actor=actor, action="oneroster.client_issued", target=integration,
        details={"integration": integration.name, "client_id": application.client_id,
                 "environment": integration.environment},
    )
    token_url, base_url = _urls()
    return IssuedCredentials(application.client_id, secret, token_url, base_url)


def _client_of(integration: Integration) -> OneRosterClient:
    client = (
        OneRosterClient.objects.select_for_update().select_related("application")
        .filter(integration=integration).first()
    )
    if client is None:
        raise CredentialError(ERROR_NO_CLIENT.format(name=integration.name))
    return client


@transaction.atomic
def oauth_client_secret_rotate(  # type: ignore[no-untyped-def]
    *, integration: Integration, actor, overlap_hours: int = DEFAULT_OVERLAP_HOURS,
) -> IssuedCredentials:
    """Issue a new secret; the current one stays valid for ``overlap_hours`` (two live
    secrets), any older one lapses now. Returns the new secret, once."""
    if not 0 <= overlap_hours <= MAX_OVERLAP_HOURS:
        raise CredentialError(ERROR_OVERLAP.format(max=MAX_OVERLAP_HOURS))
    client = _client_of(integration)
    if client.revoked_at is not None:
        raise CredentialError(ERROR_REVOKED.format(name=integration.name))
    now = timezone.now()
    live = list(client.secrets.live(now).order_by("-created_at", "-id"))
    newest, older = (live[0], live[1:]) if live else (None, [])
    ClientSecret.objects.filter(pk__in=[s.pk for s in older]).update(expires_at=now)
    if newest is not None:
        newest.expires_at = now + dt.timedelta(hours=overlap_hours)
        newest.save(update_fields=["expires_at"])
    secret = _store_secret(client, actor)
    audit.record(
        actor=actor, action="oneroster.client_secret_rotated", target=integration,
        details={"integration": integration.name, "client_id": client.client_id,
                 "overlap_hours": overlap_hours,
                 "previous_secret_expires_at": newest.expires_at.isoformat() if newest else None},
    )
    token_url, base_url = _urls()
    return IssuedCredentials(client.client_id, secret, token_url, base_url)


@transaction.atomic
def oauth_client_revoke(*, integration: Integration, actor, reason: str) -> int:  # type: ignore[no-untyped-def]
    """Revoke the client for good: its secrets and every access token it holds stop
    working on the next request. Returns the number of tokens revoked."""
    reason = (reason or "").strip()
    if not reason:
        raise CredentialError(ERROR_REASON_REQUIRED)
    client = _client_of(integration)
    now = timezone.now()
    client.revoked_at = now
    client.revoked_by = actor
    client.revoked_reason = reason
    client.save(update_fields=["revoked_at", "revoked_by", "revoked_reason"])
    client.secrets.filter(revoked_at__isnull=True).update(revoked_at=now)
    # Expired, not deleted: a later call with one of them is still refused (401), and can be
    # attributed to this integration in its access record (offboarding alerts on it).
    tokens = AccessToken.objects.filter(application=client.application, expires__gt=now).update(
        expires=now
    )
    audit.record(
        actor=actor, action="oneroster.client_revoked", target=integration,
        details={"integration": integration.name, "client_id": client.client_id,
                 "reason": reason, "tokens_revoked": tokens},
    )
    return tokens


FLUSH_BATCH = 500


PENDING_DISCLOSURE = prepared.Prepared(
    "INSERT INTO oneroster_api_pendingdisclosure "
    "(vendor_id, integration_id, field_classes, day, user_sourced_ids, created_at) "
    "VALUES (%s, %s, string_to_array(%s, E'\\n'), %s, string_to_array(%s, E'\\n'), %s)"
)


def disclosures_pending_add(*, vendor_id: int, integration_id: int, field_classes,  # type: ignore[no-untyped-def]
                            user_sourced_ids: list[str]) -> None:
    """Queue what one request disclosed (one INSERT); folded into the ledger by
    :func:`disclosures_flush`, at once when Celery runs eagerly (no worker to do it)."""
    from apps.oneroster_api.models import PendingDisclosure

    if not user_sourced_ids:
        return
    people = sorted(set(user_sourced_ids))
    classes = sorted(field_classes)
    joined = "\n".join(people)
    if joined.count("\n") == len(people) - 1:
        # A page of a thousand people: their ids travel as one text, split in SQL. Through
        # the ORM, each id went through the array field's preparation and the driver's
        # list adaptation: ~40% of a page's Python time. (sourcedIds never hold a newline;
        # one that did would take the ORM path below.)
        with connection.cursor() as cursor:
            prepared.execute(cursor, PENDING_DISCLOSURE, [
                vendor_id, integration_id, "\n".join(classes), timezone.localdate(), joined,
                timezone.now(),
            ])
    else:
        PendingDisclosure.objects.create(
            vendor_id=vendor_id, integration_id=integration_id, field_classes=classes,
            day=timezone.localdate(), user_sourced_ids=people,
        )
    if settings.CELERY_TASK_ALWAYS_EAGER:
        disclosures_flush()


def disclosures_flush() -> int:
    """Fold pending disclosures into the ledger, merged per (vendor, integration, classes,
    day), in batches; safe to run concurrently (rows are claimed with SKIP LOCKED).
    Returns the number of pending rows folded."""
    from apps.audit.models import Channel
    from apps.audit.services import disclosures_record
    from apps.oneroster_api.models import PendingDisclosure

    folded = 0
    while True:
        with transaction.atomic():
            batch = list(
                PendingDisclosure.objects.select_for_update(skip_locked=True)
                .order_by("id")[:FLUSH_BATCH]
            )
            if not batch:
                return folded
            merged: dict[tuple, set[str]] = {}
            for row in batch:
                key = (row.vendor_id, row.integration_id, tuple(row.field_classes), row.day)
                merged.setdefault(key, set()).update(row.user_sourced_ids)
            for (vendor_id, integration_id, classes, day), ids in merged.items():
                disclosures_record(
                    vendor_id=vendor_id, integration_id=integration_id,
                    channel=Channel.ONEROSTER_REST, field_classes=classes,
                    user_sourced_ids=sorted(ids), day=day,
                )
            PendingDisclosure.objects.filter(pk__in=[r.pk for r in batch]).delete()
            folded += len(batch)
