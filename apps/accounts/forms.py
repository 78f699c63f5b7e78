"""Staff login with a TOTP code, and TOTP enrolment."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django_otp import devices_for_user, match_token

ERROR_MFA_CODE_REQUIRED = "Enter the 6-digit code from your authenticator app."
ERROR_MFA_CODE_INVALID = (
    "That code is not valid. Check your authenticator app's clock and try again."
)
ERROR_MFA_THROTTLED = "Too many wrong codes. Wait a few seconds before trying again."


class StaffLoginForm(AuthenticationForm):
    """Username, password and, once enrolled, a TOTP code checked in the same step.

    A wrong code counts as a failed login, so the lockout covers it too.
    """

    otp_token = forms.CharField(
        label="Authenticator code",
        required=False,
        max_length=8,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.otp_device = None

    def confirm_login_allowed(self, user) -> None:  # type: ignore[no-untyped-def]
        super().confirm_login_allowed(user)
        devices = list(devices_for_user(user, confirmed=True))
        if not devices:
            return  # not enrolled yet: the admin sends them to enrolment before anything else
        token = (self.cleaned_data.get("otp_token") or "").strip()
        if not token:
            self._otp_failed(ERROR_MFA_CODE_REQUIRED, "otp_required")
        if not any(device.verify_is_allowed()[0] for device in devices):
            self._otp_failed(ERROR_MFA_THROTTLED, "otp_throttled")
        device = match_token(user, token)
        if device is None:
            self._otp_failed(ERROR_MFA_CODE_INVALID, "otp_invalid")
        self.otp_device = device

    def _otp_failed(self, message: str, code: str) -> None:
        user_login_failed.send(
            sender=__name__,
            credentials={"username": self.cleaned_data.get("username")},
            request=self.request,
        )
        raise forms.ValidationError(message, code=code)


class TotpEnrolForm(forms.Form):
    token = forms.CharField(
        label="Code from your authenticator app",
        max_length=8,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric",
                                      "autofocus": True}),
    )

    def __init__(self, *args, device, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.device = device

    def clean_token(self) -> str:
        token = self.cleaned_data["token"].strip()
        allowed, _ = self.device.verify_is_allowed()
        if not allowed:
            # django-otp backs off exponentially after each wrong code.
            raise forms.ValidationError(ERROR_MFA_THROTTLED, code="otp_throttled")
        if not self.device.verify_token(token):
            raise forms.ValidationError(ERROR_MFA_CODE_INVALID, code="otp_invalid")
        return token
