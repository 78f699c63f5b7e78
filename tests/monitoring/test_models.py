"""The monitoring app's models and migrations."""

from __future__ import annotations

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_migrations_are_up_to_date():
    call_command("makemigrations", "monitoring", "--check", "--dry-run", verbosity=0)
