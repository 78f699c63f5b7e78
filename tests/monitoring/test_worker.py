"""Monitoring's beat tasks through a real Celery worker on Redis."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.alerts.models import Alert
from apps.audit.models import AccessRecord, Channel
from apps.monitoring import tasks
from apps.monitoring.models import RosterVersionTelemetry
from portal.celery import app
from tests.conftest import wait_for
from tests.monitoring import history


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
