"""The offboarding demo: a retired vendor offboarded end to end, safe to run twice."""

from __future__ import annotations

import pytest

from apps.offboarding.demo import demo_offboarding_seed
from apps.offboarding.models import Incident, Offboarding, StepName
from apps.offboarding.verify import certificate_verify
from apps.vendors.models import IntegrationStatus

pytestmark = pytest.mark.django_db


def test_the_demo_offboards_a_retired_vendor_once(governance_user):
    first = demo_offboarding_seed(actor=governance_user)
    again = demo_offboarding_seed(actor=governance_user)

    assert first == again and first["status"] == "closed"
    offboarding = Offboarding.objects.get()
    assert offboarding.steps.count() == len(StepName)
    assert {i.status for i in offboarding.vendor.integrations.all()} == {
        IntegrationStatus.OFFBOARDED}
    assert certificate_verify(offboarding.certificate).valid
    assert Incident.objects.filter(vendor=offboarding.vendor).count() == 1
