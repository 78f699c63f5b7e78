"""The delivery admin as staff meet it: who sees it, what a failing destination looks like,
and the one-click levers (deliver, replay, pause) going through the services."""

from __future__ import annotations

import pytest

from apps.delivery import services
from apps.delivery.models import DeliveryRun, DestinationState, RunState

pytestmark = pytest.mark.django_db

PAGES = ("/admin/delivery/destination/", "/admin/delivery/deliveryrun/",
         "/admin/delivery/bundle/", "/admin/delivery/sissource/")


@pytest.mark.parametrize("role,expected", [("engineer", 200), ("governance", 200),
                                           ("auditor", 200), ("safeguarding", 403)])
def test_delivery_pages_open_for_the_roles_that_run_or_oversee_deliveries(
    client, staff_user_factory, role, expected
):
    client.force_login(staff_user_factory(role=role))
    for page in PAGES:
        assert client.get(page).status_code == expected, (role, page)


def test_a_failed_destination_shows_red_beside_a_healthy_one_with_its_lag(
    client, operator, pull_destination, settings
):
    settings.INTERCHANGE_DELIVERY_MAX_ATTEMPTS = 1
    run, _ = services.delivery_run_enqueue(destination=pull_destination)
    services.delivery_run_execute(run=run)  # delivered (a link)
    DeliveryRun.objects.filter(pk=run.pk).update(state=RunState.FAILED, error_code="x")
    client.force_login(operator)

    page = client.get("/admin/delivery/destination/").content.decode()

    assert "csv-vendor" in page and "failed" in page and "#b00020" in page


def test_deliver_now_and_pause_are_one_action_each_and_audited(
    client, operator, sftp_destination, django_capture_on_commit_callbacks
):
    from apps.audit.models import PendingAuditEvent

    client.force_login(operator)
    url = "/admin/delivery/destination/"
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, {"action": "deliver_now", "_selected_action": [sftp_destination.pk]})
    run = DeliveryRun.objects.get(destination=sftp_destination)
    assert run.state == RunState.DELIVERED  # eager: the drain ran on commit

    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, {"action": "pause", "_selected_action": [sftp_destination.pk]})
    sftp_destination.refresh_from_db()
    assert sftp_destination.state == DestinationState.PAUSED
    actions = set(PendingAuditEvent.objects.values_list("action", flat=True))
    assert {"delivery.run_requested", "delivery.destination_paused"} <= actions


def test_an_auditor_cannot_operate_deliveries(client, staff_user_factory, sftp_destination):
    client.force_login(staff_user_factory(role="auditor"))
    client.post("/admin/delivery/destination/",
                {"action": "deliver_now", "_selected_action": [sftp_destination.pk]})
    assert not DeliveryRun.objects.exists()


def test_staff_issue_a_fresh_download_link_that_the_vendor_can_use_once(
    client, operator, pull_destination
):
    services.delivery_run_execute(run=services.delivery_run_enqueue(
        destination=pull_destination)[0])
    client.force_login(operator)

    response = client.post("/admin/delivery/destination/",
                           {"action": "issue_link", "_selected_action": [pull_destination.pk]},
                           follow=True)

    [message] = [str(m) for m in response.context["messages"]]
    url = message.split()[1]
    assert "/delivery/download/" in url
    from django.test import Client

    assert Client().get(url).status_code == 200
    assert Client().get(url).status_code == 410


def test_rolling_back_is_one_action_on_a_delivered_run(client, operator, pull_destination,
                                                       django_capture_on_commit_callbacks):
    first = services.delivery_run_execute(
        run=services.delivery_run_enqueue(destination=pull_destination)[0]).run
    client.force_login(operator)

    with django_capture_on_commit_callbacks(execute=True):
        client.post("/admin/delivery/deliveryrun/",
                    {"action": "roll_back_to_this", "_selected_action": [first.pk]})

    rollback = DeliveryRun.objects.get(destination=pull_destination, reason="rollback")
    assert rollback.state == RunState.DELIVERED and rollback.bundle_id == first.bundle_id
