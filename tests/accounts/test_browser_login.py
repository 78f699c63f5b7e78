"""A staff member's first sign-in, in a real browser (Debian's chromium via Playwright)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.accounts.factories import DEFAULT_PASSWORD
from tests.accounts.test_mfa import current_code

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-results" / "screenshots"


def test_first_sign_in_enrols_mfa_then_lands_on_the_portal(
    browser, live_server, settings, staff_user_factory
):
    # given: production-like MFA enforcement and a governance officer with no device yet
    settings.INTERCHANGE_REQUIRE_MFA = True
    user = staff_user_factory(username="amira.dpo", role="governance", first_name="Amira")
    page = browser.new_page()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    # when: she signs in with her password
    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "amira.dpo")
    page.fill("#id_password", DEFAULT_PASSWORD)
    page.screenshot(path=str(SCREENSHOTS / "login.png"), full_page=True)
    page.click("input[type=submit]")

    # then: she is asked to enrol an authenticator before anything else
    page.wait_for_url("**/accounts/mfa/setup/")
    assert page.locator(".ix-qr svg").is_visible()
    page.screenshot(path=str(SCREENSHOTS / "mfa_setup.png"), full_page=True)
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    page.fill("#id_token", current_code(device))
    page.click("input[type=submit]")

    page.wait_for_url("**/admin/")
    assert "Governance portal" in page.content()
    assert page.locator(".ix-env").inner_text().strip().lower() == "sandbox"
    page.screenshot(path=str(SCREENSHOTS / "admin_index.png"), full_page=True)
