"""Lockout, sessions and headers on the staff login."""

from __future__ import annotations

import pytest

from tests.accounts.factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db


def test_repeated_failed_logins_lock_the_account_even_for_the_right_password(
    client, settings, staff_user_factory
):
    staff_user_factory(username="teacher1", role="engineer")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/admin/login/", {"username": "teacher1", "password": "wrong-password-1"})

    response = client.post("/admin/login/", {"username": "teacher1", "password": DEFAULT_PASSWORD})

    assert response.status_code == 429
    assert client.get("/admin/").status_code == 302


def test_admin_sessions_expire_when_idle():
    from django.conf import settings

    assert settings.SESSION_COOKIE_AGE <= 30 * 60
    assert settings.SESSION_REFRESH_SECONDS <= 60


def test_activity_pushes_a_sessions_expiry_back_at_most_once_a_refresh_interval(
    client, staff_user_factory
):
    from django.conf import settings

    from portal.browser_middleware import REFRESHED_KEY

    assert settings.SESSION_SAVE_EVERY_REQUEST is False  # the middleware decides
    staff_user_factory(username="gov.active", role="governance")
    client.post("/admin/login/", {"username": "gov.active", "password": DEFAULT_PASSWORD})
    assert client.get("/admin/").status_code == 200
    stamped = client.session[REFRESHED_KEY]

    assert client.get("/admin/").status_code == 200
    assert client.session[REFRESHED_KEY] == stamped  # within the interval: not saved again

    session = client.session  # a minute of the session's life later...
    session[REFRESHED_KEY] = stamped - settings.SESSION_REFRESH_SECONDS
    session.save()
    assert client.get("/admin/").status_code == 200
    assert client.session[REFRESHED_KEY] >= stamped  # ...the next request pushed it back


def test_a_stale_session_cookie_creates_no_session(client):
    from django.conf import settings

    client.cookies[settings.SESSION_COOKIE_NAME] = "nosuchsessionkey0000000000000000"
    response = client.get("/admin/login/")

    assert response.status_code == 200
    cookie = response.cookies.get(settings.SESSION_COOKIE_NAME)
    assert cookie is None or cookie.value == ""  # never a fresh session for a stale key


def test_the_login_page_sends_a_content_security_policy_and_refuses_framing(client):
    response = client.get("/admin/login/")

    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert response["X-Frame-Options"] == "DENY"


def test_the_environment_is_shown_on_every_admin_page(client, settings):
    response = client.get("/admin/login/")

    assert b"ix-env-banner-sandbox" in response.content
    assert b"Sandbox: synthetic demo data only." in response.content


def test_with_redis_a_session_is_shared_by_every_process_and_never_touches_the_database(
    redis_url, client, staff_user_factory
):
    from django.conf import settings
    from django.contrib.sessions.models import Session
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    staff_user_factory(username="gov.sessions", role="governance")
    client.post("/admin/login/", {"username": "gov.sessions", "password": DEFAULT_PASSWORD})
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/admin/").status_code == 200

    assert not any("django_session" in q["sql"] for q in queries.captured_queries)
    assert not Session.objects.exists()
    # Another process (a fresh client with the same cookie) sees the session, and after a
    # logout anywhere, nobody does.
    cookie = settings.SESSION_COOKIE_NAME
    other = Client()
    other.cookies[cookie] = client.cookies[cookie].value
    assert other.get("/admin/").status_code == 200
    client.post("/admin/logout/")
    assert other.get("/admin/").status_code == 302
