"""The sandbox demo shows a delivered bundle behind a working link."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db


def test_the_demo_delivers_the_csv_integration_a_bundle_behind_a_link(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    out = StringIO()
    call_command("seed_demo", "--json", "--students", "60", stdout=out)

    [delivery] = json.loads(out.getvalue())["deliveries"]

    assert delivery["state"] == "delivered" and delivery["rows"]["users"] > 0
    response = Client().get(delivery["download_url"])
    assert response.status_code == 200
