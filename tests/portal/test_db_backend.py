"""portal.db: a connection that finished a request cleanly moments ago is not pinged at the
start of the next request; one idle for longer is, and a dead one is replaced."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.signals import request_finished, request_started
from django.db import DEFAULT_DB_ALIAS, connection, connections

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pings(monkeypatch):  # type: ignore[no-untyped-def]
    """Counts Django's health-check pings on the default connection (still sent)."""
    sent: list[int] = []
    real = connection.is_usable

    def counted() -> bool:
        sent.append(1)
        return real()

    monkeypatch.setattr(connection, "is_usable", counted)
    return sent


def a_request() -> int:
    """What a request does to the connection: signals around one statement; its backend pid."""
    request_started.send(sender=None)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    request_finished.send(sender=None)
    return pid


def test_the_hub_runs_on_its_own_backend_with_health_checks_on():
    assert settings.DATABASES["default"]["ENGINE"] == "portal.db"
    assert connection.health_check_enabled


def test_back_to_back_requests_are_not_pinged(pings):
    a_request()  # the connection may be new or idle: checked as Django always did
    before = len(pings)
    a_request()
    a_request()

    assert len(pings) == before


def test_a_connection_idle_longer_than_the_window_is_pinged_and_a_dead_one_replaced(pings):
    first = a_request()
    connection.clean_at -= connection.TRUSTED_FOR_SECONDS + 1  # idle for a while
    other = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [first])
    finally:
        other.close()
    before = len(pings)

    second = a_request()

    assert len(pings) == before + 1
    assert second != first


def test_a_request_that_failed_leaves_the_connection_to_be_checked(pings):
    a_request()
    request_started.send(sender=None)
    with connection.cursor():
        pass
    connection.errors_occurred = True  # what Django records after a statement failed
    request_finished.send(sender=None)  # checks it (Django), but does not trust it
    before = len(pings)
    connection.clean_at -= connection.TRUSTED_FOR_SECONDS + 1

    a_request()

    assert len(pings) == before + 1
