"""Staff MFA, as a person at the login page meets it."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse
from django.utils.html import escape
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts.forms import (
    ERROR_MFA_CODE_INVALID,
    ERROR_MFA_CODE_REQUIRED,
    ERROR_MFA_THROTTLED,
)
from tests.accounts.factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"


def current_code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}"


def login(client, username: str, token: str = "", follow: bool = False):  # type: ignore[no-untyped-def]
    return client.post(
        f"{LOGIN}?next=/admin/",
        {"username": username, "password": DEFAULT_PASSWORD, "otp_token": token},
        follow=follow,
    )


@pytest.fixture
def mfa_required(settings):  # type: ignore[no-untyped-def]
    settings.INTERCHANGE_REQUIRE_MFA = True


@pytest.fixture
def enrolled(staff_user_factory):  # type: ignore[no-untyped-def]
    user = staff_user_factory(username="dpo", role="governance")
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    return user, device


def test_staff_without_mfa_cannot_reach_the_admin_and_is_sent_to_enrol(
    client, mfa_required, staff_user_factory
):
    staff_user_factory(username="newstaff", role="governance")

    response = login(client, "newstaff")

    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:mfa_setup")
    # The password alone opens nothing: every admin page leads back to enrolment.
    for path in ("/admin/", "/admin/alerts/alert/", "/admin/auth/user/"):
        page = client.get(path)
        assert page.status_code == 302
        assert page["Location"] == reverse("accounts:mfa_setup")


def test_enrolment_confirms_a_device_with_a_valid_code_and_opens_the_admin(
    client, mfa_required, staff_user_factory
):
    user = staff_user_factory(username="newstaff", role="governance")
    login(client, "newstaff")
    setup = client.get(reverse("accounts:mfa_setup"))
    assert setup.status_code == 200
    assert b"<svg" in setup.content  # the QR code
    device = TOTPDevice.objects.get(user=user, confirmed=False)

    wrong = client.post(reverse("accounts:mfa_setup"), {"token": "000000"})
    assert escape(ERROR_MFA_CODE_INVALID) in wrong.content.decode()
    assert not TOTPDevice.objects.filter(user=user, confirmed=True).exists()
    throttled = client.post(reverse("accounts:mfa_setup"), {"token": current_code(device)})
    assert escape(ERROR_MFA_THROTTLED) in throttled.content.decode()
    time.sleep(2.1)  # the back-off after two wrong attempts

    done = client.post(reverse("accounts:mfa_setup"), {"token": current_code(device)})
    assert done.status_code == 302
    assert client.get("/admin/").status_code == 200
    assert TOTPDevice.objects.filter(user=user, confirmed=True).count() == 1


def test_enrolled_staff_need_the_code_as_well_as_the_password(client, mfa_required, enrolled):
    user, device = enrolled

    no_code = login(client, user.username)
    assert escape(ERROR_MFA_CODE_REQUIRED) in no_code.content.decode()
    wrong_code = login(client, user.username, token="123456")
    assert escape(ERROR_MFA_CODE_INVALID) in wrong_code.content.decode()
    assert client.get("/admin/").status_code == 302
    throttled = login(client, user.username, token=current_code(device))
    assert escape(ERROR_MFA_THROTTLED) in throttled.content.decode()
    time.sleep(2.1)  # django-otp's back-off after wrong codes

    ok = login(client, user.username, token=current_code(device))
    assert ok.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_a_staff_member_with_a_device_cannot_enrol_another_one(client, mfa_required, enrolled):
    user, device = enrolled
    login(client, user.username, token=current_code(device))

    response = client.get(reverse("accounts:mfa_setup"))

    assert response.status_code == 302
    assert TOTPDevice.objects.filter(user=user).count() == 1


def test_the_sandbox_lets_staff_in_without_mfa_but_honours_an_enrolled_device(
    client, settings, staff_user_factory, enrolled
):
    settings.INTERCHANGE_REQUIRE_MFA = False
    staff_user_factory(username="plain", role="engineer")
    assert login(client, "plain").status_code == 302
    assert client.get("/admin/").status_code == 200

    client.logout()
    user, _ = enrolled
    assert escape(ERROR_MFA_CODE_REQUIRED) in login(client, user.username).content.decode()


def test_wrong_codes_count_towards_the_lockout(client, mfa_required, enrolled, settings):
    user, device = enrolled
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(client, user.username, token="000000")

    locked = login(client, user.username, token=current_code(device))

    assert locked.status_code == 429
    assert b"temporarily locked" in locked.content
    assert client.get("/admin/").status_code == 302
