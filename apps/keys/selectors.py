"""Reads with rules: which signing keys each JWKS publishes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from apps.keys.jwk import rsa_public_jwk
from apps.keys.models import SigningKey

State = SigningKey.State
_FIELDS = ("kid", "public_key_pem", "algorithm", "state", "revoked_at", "created_at")


def _jwk(row: dict[str, Any]) -> dict[str, Any]:
    public = load_pem_public_key(row["public_key_pem"].encode("ascii"))
    assert isinstance(public, RSAPublicKey)  # noqa: S101 (we only store RSA keys)
    return {**rsa_public_jwk(public), "kid": row["kid"], "alg": row["algorithm"], "use": "sig"}


def lti_signing_keys_published(*, now: datetime | None = None):  # type: ignore[no-untyped-def]
    """Next, active, and retired LTI keys still inside the overlap window; never revoked ones.

    Tools cache the JWKS; publishing the next key before it signs and the retired
    one until tokens it signed have expired means a rotation never breaks a launch.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(hours=settings.INTERCHANGE_LTI_KEY_RETIRED_OVERLAP_HOURS)
    return SigningKey.objects.filter(purpose=SigningKey.Purpose.LTI).filter(
        Q(state__in=[State.NEXT, State.ACTIVE]) | Q(state=State.RETIRED, retired_at__gte=cutoff)
    )


def lti_jwks(*, now: datetime | None = None) -> dict[str, list[dict[str, Any]]]:
    rows = lti_signing_keys_published(now=now).order_by("created_at").values(*_FIELDS)
    return {"keys": [_jwk(row) for row in rows]}


def evidence_jwks() -> dict[str, list[dict[str, Any]]]:
    """Every evidence key ever created, for good: an export signed years ago must still verify.

    Revoked keys stay listed, marked, so a verifier can tell "signed by a key we
    later distrusted" from "signed by an unknown key".
    """
    rows = (
        SigningKey.objects.filter(purpose=SigningKey.Purpose.EVIDENCE)
        .order_by("created_at")
        .values(*_FIELDS)
    )
    keys = []
    for row in rows:
        jwk = _jwk(row)
        if row["state"] == State.REVOKED:
            jwk["revoked"] = True
            jwk["revoked_at"] = row["revoked_at"].isoformat()
        keys.append(jwk)
    return {"keys": keys}
