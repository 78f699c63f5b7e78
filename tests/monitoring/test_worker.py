"""Monitoring's beat tasks through a real Celery worker on Redis."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from apps.alerts.models import Alert
from apps.audit.models import AccessRecord, Channel
from apps.monitoring import tasks
from apps.monitoring.models import RosterVersionTelemetry
from portal.celery import app
from tests.monitoring import history


@pytest.fixture
def celery_worker(redis_url):  # type: ignore[no-untyped-def]
    from celery.contrib.testing.worker import start_worker

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10) as worker:
        yield worker


def wait_for(predicate, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for the worker")


def test_the_beat_schedule_runs_every_monitoring_task():
    schedule = app.conf.beat_schedule
    for name in ("monitoring.roster_telemetry", "monitoring.access_rollup",
                 "monitoring.rules_evaluate", "monitoring.notifications_send",
                 "monitoring.digests_send"):
        assert schedule[name]["task"] == name and name in app.tasks


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_records_telemetry_and_raises_alerts(celery_worker):
    # given a new roster version and a client guessing secrets
    history.people(40)
    history.version(1)
    AccessRecord.objects.bulk_create([
        AccessRecord(occurred_at=timezone.now(), integration_id=None,
                     channel=Channel.ONEROSTER_REST, endpoint="/oauth/token", status_code=401,
                     client_id="client-guessing")
        for _ in range(12)
    ])

    # when the beat's evaluation task runs on the worker
    tasks.rules_evaluate.delay()

    # then the version has its telemetry and the failures an alert
    alert = wait_for(lambda: Alert.objects.filter(rule="monitoring.token_failures").first())
    assert alert.details["failures"] == 12
    assert RosterVersionTelemetry.objects.get(number=1).totals["users"] == 40
