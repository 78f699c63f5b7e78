"""Writes about staff accounts: TOTP devices and demo personas."""

from __future__ import annotations

from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.audit import audit


def totp_device_pending(*, user) -> TOTPDevice:  # type: ignore[no-untyped-def]
    """The unconfirmed device a user is enrolling (one at a time, reused on reload)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("id").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    return device


@transaction.atomic
def totp_device_confirm(*, device: TOTPDevice, actor) -> None:  # type: ignore[no-untyped-def]
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    TOTPDevice.objects.filter(user=device.user, confirmed=False).delete()
    audit.record(
        actor=actor, action="accounts.mfa_enrolled", target=device.user, details={"device": "totp"}
    )
