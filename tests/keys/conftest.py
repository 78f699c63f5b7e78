"""Fixtures for the keys app: master keys under test control."""

from __future__ import annotations

import pytest

from apps.keys.master import generate_key


@pytest.fixture
def master_key(settings):  # type: ignore[no-untyped-def]
    """A fresh current master key for this test, and no previous one."""
    settings.INTERCHANGE_MASTER_KEY = generate_key()
    settings.INTERCHANGE_MASTER_KEY_PREVIOUS = None
    return settings.INTERCHANGE_MASTER_KEY
