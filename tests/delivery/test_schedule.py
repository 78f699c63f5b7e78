"""Scheduled mode: per-destination intervals driven by the beat tick, idempotent."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from apps.delivery import services, tasks
from apps.delivery.models import DeliveryRun, Destination, RunState

pytestmark = pytest.mark.django_db


def test_a_destination_on_an_interval_is_delivered_when_due_and_not_twice(pull_destination):
    Destination.objects.filter(pk=pull_destination.pk).update(interval_minutes=60,
                                                              event_driven=False)

    tasks.schedule_tick.delay()
    tasks.schedule_tick.delay()  # not due again yet

    [run] = DeliveryRun.objects.filter(destination=pull_destination)
    assert run.state == RunState.DELIVERED and run.reason == "schedule"

    later = timezone.now() + dt.timedelta(minutes=61)
    due = services.destinations_schedule_due(now=later)
    assert due == [pull_destination.pk]
    # nothing new in the roster: the same version is the same run, not a second delivery
    assert DeliveryRun.objects.filter(destination=pull_destination).count() == 1


def test_a_due_retry_is_picked_up_by_the_tick(pull_destination):
    run, _ = services.delivery_run_enqueue(destination=pull_destination)
    DeliveryRun.objects.filter(pk=run.pk).update(
        attempts=1, next_attempt_at=timezone.now() - dt.timedelta(seconds=1))

    tasks.schedule_tick.delay()

    run.refresh_from_db()
    assert run.state == RunState.DELIVERED and run.attempts == 2
