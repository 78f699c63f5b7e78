"""The LTI housekeeping task: expired hints and tokens go, current ones stay."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings
from django.utils import timezone

from apps.lti.models import ServiceToken, TokenRequest
from apps.lti.tasks import records_prune
from tests.lti.advantage import ADVANTAGE, ALL_SCOPES, NRPS, token_for
from tests.lti.conftest import register_tool

pytestmark = pytest.mark.django_db


def test_the_prune_is_scheduled():
    assert settings.CELERY_BEAT_SCHEDULE["lti.records_prune"]["task"] == "lti.records_prune"


def test_expired_service_tokens_are_pruned_and_their_requests_kept(client, school):
    tool = register_tool(services=ADVANTAGE, scopes=ALL_SCOPES,
                         field_classes=("identifier", "directory"))
    token_for(client, tool, NRPS)
    token_for(client, tool, NRPS)
    old = ServiceToken.objects.order_by("id").first()
    ServiceToken.objects.filter(pk=old.pk).update(
        expires_at=timezone.now() - dt.timedelta(days=2))

    assert records_prune.delay().get() == {"launch_records": 0, "service_tokens": 1}
    assert ServiceToken.objects.count() == 1
    assert TokenRequest.objects.count() == 2
