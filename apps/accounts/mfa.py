"""Small questions about a staff member's MFA state, asked by the admin site and views."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django_otp import devices_for_user


def user_is_verified(request: HttpRequest) -> bool:
    is_verified = getattr(request.user, "is_verified", None)
    return bool(is_verified and is_verified())


def has_confirmed_device(user) -> bool:  # type: ignore[no-untyped-def]
    return any(True for _ in devices_for_user(user, confirmed=True))


def needs_enrolment(request: HttpRequest) -> bool:
    """Signed-in staff who must enrol a TOTP device before they may do anything else."""
    user = request.user
    return (
        settings.INTERCHANGE_REQUIRE_MFA
        and user.is_authenticated
        and user.is_staff
        and not user_is_verified(request)
        and not has_confirmed_device(user)
    )
