"""Vendors' machine-to-machine endpoints skip the browser's middleware (sessions, cookie
authentication, MFA, messages), and a session cookie authenticates nobody there;
every other path keeps all of it."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

API_PROBE = "/ims/oneroster/probe"
BROWSER_PROBE = "/portal-probe"
SECURITY_HEADERS = ("X-Request-ID", "X-Content-Type-Options", "X-Frame-Options",
                    "Referrer-Policy", "Content-Security-Policy")


@pytest.fixture
def signed_in(staff_user_factory):  # type: ignore[no-untyped-def]
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user_factory(role="governance"))
    return client


@pytest.mark.urls("tests.portal.urls_request_probe")
def test_a_session_cookie_authenticates_nobody_on_an_api_path(signed_in):
    api = signed_in.get(API_PROBE)
    browser = signed_in.get(BROWSER_PROBE)

    assert api.json() == {"authenticated": False, "has_session": False}
    assert browser.json() == {"authenticated": True, "has_session": True}


@pytest.mark.urls("tests.portal.urls_request_probe")
def test_an_api_answer_neither_reads_nor_sets_the_session(signed_in):
    answer = signed_in.get(API_PROBE)

    assert "Set-Cookie" not in answer.headers and "Cookie" not in answer.get("Vary", "")


@pytest.mark.urls("tests.portal.urls_request_probe")
def test_api_answers_keep_the_security_headers(signed_in):
    api, browser = signed_in.get(API_PROBE), signed_in.get(BROWSER_PROBE)

    for name in SECURITY_HEADERS:
        assert api.has_header(name), name
        if name != "X-Request-ID":
            assert api[name] == browser[name], name


def test_token_introspection_is_for_signed_in_staff_so_it_keeps_the_browser_chain():
    assert not any("/oauth/introspect".startswith(p) for p in settings.API_PATH_PREFIXES)
    assert any("/oauth/token/".startswith(p) for p in settings.API_PATH_PREFIXES)
