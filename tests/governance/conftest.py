"""Fixtures shared by the governance tests."""

from __future__ import annotations

import pytest

from apps.keys.master import generate_key


@pytest.fixture
def master_key(settings):  # type: ignore[no-untyped-def]
    """A fresh master key for this test (pseudonym keys are wrapped by it)."""
    settings.INTERCHANGE_MASTER_KEY = generate_key()
    settings.INTERCHANGE_MASTER_KEY_PREVIOUS = None
    return settings.INTERCHANGE_MASTER_KEY


@pytest.fixture
def officer(staff_user_factory):  # type: ignore[no-untyped-def]
    """A safeguarding officer: the only role that sets exclusions and overrides."""
    return staff_user_factory(username="officer.dsl", role="safeguarding")


@pytest.fixture
def governance_user(staff_user_factory):  # type: ignore[no-untyped-def]
    return staff_user_factory(username="gov.dpo", role="governance")
