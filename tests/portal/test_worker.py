"""Celery: settings for idempotent jobs, and a real worker on Redis that carries request ids."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from portal.celery import app
from portal.health import WORKER_HEARTBEAT_CACHE_KEY, worker_heartbeat_last
from portal.observability import JsonFormatter, RequestIdLogFilter
from portal.tasks import heartbeat
from tests.conftest import wait_for

REQUEST_ID = "trace-0123456789abcdef"


class JsonLines(logging.Handler):
    """Formats records exactly as production does (the project's filter and formatter)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.addFilter(RequestIdLogFilter())
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def objects(self) -> list[dict]:
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def task_log() -> Iterator[JsonLines]:
    handler = JsonLines()
    logger = logging.getLogger("portal.tasks")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def test_jobs_are_acknowledged_late_and_redelivered_only_after_the_longest_job():
    conf = app.conf

    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_soft_time_limit < conf.task_time_limit
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    assert conf.task_default_retry_delay > 0
    assert conf.worker_hijack_root_logger is False  # our JSON logging stays in force


def test_beat_schedules_the_heartbeat_and_lets_stale_ones_expire():
    entry = app.conf.beat_schedule["ops.heartbeat"]

    assert entry["task"] == "ops.heartbeat"
    assert entry["options"]["expires"] <= entry["schedule"]
    assert "ops.heartbeat" in app.tasks


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_heartbeat_and_readyz_reports_it(celery_worker, client):
    from django.core.cache import cache

    cache.delete(WORKER_HEARTBEAT_CACHE_KEY)
    assert client.get("/readyz").json()["worker"] == {"last_heartbeat": None, "age_seconds": None}

    heartbeat.delay()

    last = wait_for(worker_heartbeat_last)
    worker = client.get("/readyz").json()["worker"]
    assert worker["last_heartbeat"] == last.isoformat()
    assert 0 <= worker["age_seconds"] < 15


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.urls("tests.portal.urls_enqueue")
def test_the_request_id_of_a_web_request_follows_its_job_into_the_worker_logs(
    celery_worker, client, task_log
):
    response = client.get("/test/enqueue-heartbeat", HTTP_X_REQUEST_ID=REQUEST_ID)
    assert response.status_code == 200

    [line] = wait_for(task_log.objects)
    assert line["message"] == "worker heartbeat"
    assert line["request_id"] == REQUEST_ID
    assert line["worker"] and line["worker"] in celery_worker.hostname


@pytest.mark.django_db
@pytest.mark.urls("tests.portal.urls_enqueue")
def test_a_job_run_eagerly_keeps_the_request_id_of_the_request(client, task_log):
    client.get("/test/enqueue-heartbeat", HTTP_X_REQUEST_ID=REQUEST_ID)

    [line] = task_log.objects()
    assert line["request_id"] == REQUEST_ID
