"""Suspending and resuming integrations and vendors: state every spoke reads, audited."""

from __future__ import annotations

import pytest

from apps.audit.models import PendingAuditEvent
from apps.vendors import services
from apps.vendors.models import IntegrationStatus, VendorStatus
from tests.vendors.factories import IntegrationFactory, VendorFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def dpo(staff_user_factory):  # type: ignore[no-untyped-def]
    return staff_user_factory(username="dpo", role="governance")


def _actions() -> list[str]:
    return list(PendingAuditEvent.objects.order_by("id").values_list("action", flat=True))


def test_suspending_an_integration_makes_it_not_live_and_is_audited_with_the_reason(dpo):
    integration = IntegrationFactory()
    assert integration.is_live

    services.integration_suspend(integration=integration, actor=dpo, reason="Breach reported")

    integration.refresh_from_db()
    assert integration.status == IntegrationStatus.SUSPENDED
    assert not integration.is_live
    event = PendingAuditEvent.objects.get(action="vendors.integration_suspended")
    assert event.details["reason"] == "Breach reported"
    assert integration.history.first().history_change_reason == "Breach reported"


def test_resuming_restores_the_integration(dpo):
    integration = IntegrationFactory()
    services.integration_suspend(integration=integration, actor=dpo, reason="Investigating")
    services.integration_resume(integration=integration, actor=dpo, reason="Cleared")
    integration.refresh_from_db()
    assert integration.is_live
    assert _actions() == ["vendors.integration_suspended", "vendors.integration_resumed"]


def test_a_lever_needs_a_reason(dpo):
    integration = IntegrationFactory()
    with pytest.raises(services.VendorServiceError, match="reason"):
        services.integration_suspend(integration=integration, actor=dpo, reason="  ")
    integration.refresh_from_db()
    assert integration.is_live


def test_only_a_suspended_integration_can_be_resumed(dpo):
    integration = IntegrationFactory(status=IntegrationStatus.DRAFT)
    with pytest.raises(services.VendorServiceError, match="cannot go from draft"):
        services.integration_resume(integration=integration, actor=dpo, reason="go")


def test_suspending_a_vendor_takes_all_its_integrations_offline_and_resuming_restores_them(dpo):
    vendor = VendorFactory()
    first, second = IntegrationFactory(vendor=vendor), IntegrationFactory(vendor=vendor)

    services.vendor_suspend(vendor=vendor, actor=dpo, reason="Contract dispute")
    first.refresh_from_db()
    second.refresh_from_db()
    assert vendor.status == VendorStatus.SUSPENDED
    assert not first.is_live and not second.is_live
    # Their own statuses are untouched, so resuming restores exactly what was live.
    assert first.status == second.status == IntegrationStatus.ACTIVE

    services.vendor_resume(vendor=vendor, actor=dpo, reason="Resolved")
    first.refresh_from_db()
    assert first.is_live
    assert _actions() == ["vendors.vendor_suspended", "vendors.vendor_resumed"]


def test_a_vendor_is_offboarded_only_once_nothing_of_it_is_connected(dpo):
    integration = IntegrationFactory()
    vendor = integration.vendor

    with pytest.raises(services.VendorServiceError, match="not offboarded"):
        services.vendor_offboard(vendor=vendor, actor=dpo, reason="Contract ended")

    for status in (IntegrationStatus.OFFBOARDING, IntegrationStatus.OFFBOARDED):
        services.integration_status_set(integration=integration, status=status, actor=dpo,
                                        reason="Contract ended", action="test.offboard")
    services.vendor_offboard(vendor=vendor, actor=dpo, reason="Contract ended")

    vendor.refresh_from_db()
    assert vendor.status == VendorStatus.OFFBOARDED
    assert "vendors.vendor_offboarded" in _actions()
    with pytest.raises(services.VendorServiceError):
        services.vendor_resume(vendor=vendor, actor=dpo, reason="changed our minds")
