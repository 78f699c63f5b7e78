"""Monitoring's Prometheus metrics: hub gauges read at scrape time, one value however many
gunicorn workers answered scrapes before."""

from __future__ import annotations

import re

import pytest
import redis

from apps.alerts.alerts import raise_alert
from apps.audit.models import Channel
from apps.audit.services import access_record
from apps.monitoring import metrics
from apps.monitoring.metrics import CELERY_QUEUE

pytestmark = pytest.mark.django_db


@pytest.fixture
def celery_queue(redis_url):  # type: ignore[no-untyped-def]
    """The Celery queue list on this test's Redis database, emptied before and after."""
    client = redis.Redis.from_url(redis_url)
    client.delete(CELERY_QUEUE)
    yield client
    client.delete(CELERY_QUEUE)
    client.close()


@pytest.fixture
def scrape(client, monkeypatch, settings, redis_url):  # type: ignore[no-untyped-def]
    settings.REDIS_URL = redis_url

    def get() -> str:
        monkeypatch.setattr(metrics, "_last_refresh", 0.0)  # no throttle between scrapes
        response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
        assert response.status_code == 200
        return response.content.decode()

    return get


def _value(text: str, sample: str) -> float:
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    assert match, f"{sample} not in exposition"
    return float(match.group(1))


def test_queue_depth_is_the_length_of_the_celery_queue(scrape, celery_queue):
    celery_queue.rpush(CELERY_QUEUE, "job-1", "job-2", "job-3")

    assert _value(scrape(), 'interchange_queue_depth{queue="celery"}') == 3.0

    celery_queue.lpop(CELERY_QUEUE)
    assert _value(scrape(), 'interchange_queue_depth{queue="celery"}') == 2.0


def test_open_alerts_and_recent_token_failures_are_exported(scrape):
    raise_alert(rule="monitoring.delivery_lag", subject="behind", severity="critical")
    for _ in range(4):
        access_record(integration_id=None, channel=Channel.ONEROSTER_REST,
                      endpoint="/oauth/token", status_code=401, records=0, duration_ms=1,
                      client_id="guess")

    text = scrape()

    assert _value(text, 'interchange_open_alerts{severity="critical"}') == 1.0
    assert _value(text, 'interchange_open_alerts{severity="info"}') == 0.0
    assert _value(text, "interchange_token_failures_last_hour") == 4.0


def test_a_csv_destination_behind_the_newest_version_shows_its_lag(scrape):
    from tests.monitoring import history
    from tests.vendors.factories import IntegrationFactory

    IntegrationFactory(kind="oneroster_csv", name="Nightly SFTP")
    history.version(1)

    assert _value(scrape(), 'interchange_delivery_lag_seconds{integration="Nightly SFTP"}') >= 0.0


SCRAPE_WITH_QUEUE = """
import sys
import django
django.setup()
import redis
from django.conf import settings
from django.test import Client
client = redis.Redis.from_url(settings.REDIS_URL)
client.delete("celery")
if int(sys.argv[1]):
    client.rpush("celery", *["job"] * int(sys.argv[1]))
response = Client().get("/metrics", HTTP_HOST="127.0.0.1", REMOTE_ADDR="127.0.0.1")
assert response.status_code == 200, response.status_code
client.delete("celery")
print(response.content.decode())
"""


@pytest.mark.django_db(False)
def test_hub_gauges_are_not_summed_across_worker_processes(run_portal, tmp_path, redis_url):
    # given two workers that each answered a scrape, seeing 3 then 5 queued jobs
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(multiproc), "REDIS_URL": redis_url}
    for depth in ("3", "5"):
        served = run_portal(["-c", SCRAPE_WITH_QUEUE, depth], env)
        assert served.returncode == 0, served.stderr

    # when a third process serves the scrape while the queue is empty
    scraped = run_portal(["-c", SCRAPE_WITH_QUEUE, "0"], env)

    # then there is one series with the newest value, never 3 + 5 + 0
    assert scraped.returncode == 0, scraped.stderr
    samples = re.findall(r"^interchange_queue_depth\{.*$", scraped.stdout, re.MULTILINE)
    assert samples == ['interchange_queue_depth{queue="celery"} 0.0']
