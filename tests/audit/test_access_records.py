"""Access records: a bounded recent log plus hourly aggregates, one statement per request."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.audit import services
from apps.audit.models import AccessHourly, AccessRecord, Channel
from apps.audit.tasks import prune_access_log_task

pytestmark = pytest.mark.django_db

ROUTE = "/ims/oneroster/rostering/v1p2/users"


def serve(status_code=200, records=100, duration_ms=40, integration_id=7, endpoint=ROUTE):
    services.access_record(
        integration_id=integration_id,
        channel=Channel.ONEROSTER_REST,
        endpoint=endpoint,
        status_code=status_code,
        records=records,
        duration_ms=duration_ms,
        client_id="client-7",
    )


def test_each_request_is_logged_and_aggregated_per_hour_in_one_statement():
    with CaptureQueriesContext(connection) as queries:
        serve(records=100, duration_ms=40)
    assert len(queries) == 1

    serve(records=50, duration_ms=90)
    serve(status_code=403, records=0, duration_ms=5)
    serve(status_code=500, records=0, duration_ms=10)

    assert AccessRecord.objects.count() == 4
    hourly = AccessHourly.objects.get()
    assert (hourly.integration_id, hourly.channel, hourly.endpoint) == (7, "oneroster_rest", ROUTE)
    assert hourly.hour == timezone.now().replace(minute=0, second=0, microsecond=0)
    assert (hourly.requests, hourly.errors, hourly.records) == (4, 2, 150)
    assert (hourly.duration_ms_total, hourly.duration_ms_max) == (145, 90)
    assert hourly.mean_duration_ms == 36


def test_requests_without_an_integration_aggregate_together():
    serve(integration_id=None, status_code=401)
    serve(integration_id=None, status_code=401)

    hourly = AccessHourly.objects.get()
    assert (hourly.integration_id, hourly.requests, hourly.errors) == (None, 2, 2)


def test_endpoints_and_integrations_aggregate_separately_and_query_strings_are_dropped():
    serve(endpoint=ROUTE + "?limit=100&offset=0")
    serve(endpoint=ROUTE + "?limit=100&offset=100")
    serve(endpoint="/ims/oneroster/rostering/v1p2/classes")
    serve(integration_id=8)

    rows = AccessHourly.objects.order_by("integration_id", "endpoint")
    assert list(rows.values_list("integration_id", "endpoint", "requests")) == [
        (7, "/ims/oneroster/rostering/v1p2/classes", 1),
        (7, ROUTE, 2),
        (8, ROUTE, 1),
    ]


def test_an_unknown_channel_is_refused():
    with pytest.raises(ValueError, match="unknown channel 'ftp'"):
        services.access_record(
            integration_id=1, channel="ftp", endpoint="/", status_code=200, records=0, duration_ms=1
        )


def test_pruning_keeps_the_recent_log_within_its_retention(settings):
    settings.INTERCHANGE_ACCESS_LOG_RETENTION_DAYS = 30
    for _ in range(3):
        serve()
    old = AccessRecord.objects.order_by("id")[:2]
    AccessRecord.objects.filter(id__in=[r.id for r in old]).update(
        occurred_at=timezone.now() - dt.timedelta(days=31)
    )

    assert prune_access_log_task.delay().get() == 2

    assert AccessRecord.objects.count() == 1
    assert AccessHourly.objects.get().requests == 3  # aggregates are kept
