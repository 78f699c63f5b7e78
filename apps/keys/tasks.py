"""Celery tasks of the keys app: thin calls into the services."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from apps.keys import services
from apps.keys.models import SigningKey


@shared_task(name="keys.rotate_lti_signing_keys_if_due")
def rotate_lti_signing_keys_if_due_task() -> str | None:
    """Daily: rotate the LTI keys once the active one is older than the configured age."""
    # LTI keys rotate often; evidence keys only on decision (they must verify for years anyway).
    activated = services.signing_keys_rotate_if_due(
        purpose=SigningKey.Purpose.LTI, max_age_days=settings.INTERCHANGE_LTI_KEY_MAX_AGE_DAYS
    )
    return activated.kid if activated else None


@shared_task(name="keys.rotate_signing_keys")
def rotate_signing_keys_task(purpose: str) -> str:
    return services.signing_keys_rotate(purpose=purpose).kid
