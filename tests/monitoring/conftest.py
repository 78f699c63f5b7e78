"""Fixtures shared by the monitoring tests."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

# Starting the portal in a fresh process (multiprocess metrics) is the portal tests' fixture.
from tests.portal.conftest import run_portal  # noqa: F401


@pytest.fixture
def now() -> dt.datetime:
    """Mid-afternoon today: far from midnight and from an hour's edge, so windows are stable."""
    return timezone.now().replace(hour=14, minute=30, second=0, microsecond=0)
