"""The Prometheus endpoint: not open to the public, and correct under several processes."""

from __future__ import annotations

import re

import pytest

TOKEN = "metrics-token-for-tests-0123456789"
PUBLIC_ADDR = "203.0.113.9"


@pytest.mark.django_db
def test_metrics_are_refused_to_a_non_loopback_address_without_a_token(client):
    response = client.get("/metrics", REMOTE_ADDR=PUBLIC_ADDR)

    assert response.status_code == 403


@pytest.mark.django_db
def test_a_loopback_peer_that_is_a_reverse_proxy_is_not_trusted(client):
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=PUBLIC_ADDR)

    assert response.status_code == 403


@pytest.mark.django_db
def test_metrics_include_request_latency_by_route_for_a_direct_loopback_scrape(client):
    client.get("/healthz")

    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert 'interchange_http_request_seconds_count{method="GET",route="healthz"}' in text
    assert re.search(
        r'interchange_http_responses_total\{method="GET",route="healthz",status="200"\} [1-9]', text
    )


@pytest.mark.django_db
def test_with_a_token_only_its_bearer_may_scrape(client, settings):
    settings.INTERCHANGE_METRICS_TOKEN = TOKEN

    granted = client.get("/metrics", REMOTE_ADDR=PUBLIC_ADDR, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    wrong = client.get("/metrics", REMOTE_ADDR=PUBLIC_ADDR, HTTP_AUTHORIZATION="Bearer guess")
    missing = client.get("/metrics", REMOTE_ADDR=PUBLIC_ADDR)
    loopback_without_token = client.get("/metrics", REMOTE_ADDR="127.0.0.1")

    assert granted.status_code == 200
    assert b"interchange_http_request_seconds" in granted.content
    assert wrong.status_code == 403
    assert missing.status_code == 403
    assert loopback_without_token.status_code == 403


SERVE_REQUESTS = """
import sys
import django
django.setup()
from django.test import Client
client = Client()
for _ in range(int(sys.argv[1])):
    assert client.get("/healthz", HTTP_HOST="127.0.0.1").status_code == 200
"""

SCRAPE = """
import django
django.setup()
from django.test import Client
response = Client().get("/metrics", HTTP_HOST="127.0.0.1", REMOTE_ADDR="127.0.0.1")
assert response.status_code == 200, response.status_code
print(response.content.decode())
"""


def test_metrics_are_summed_across_worker_processes_in_multiprocess_mode(run_portal, tmp_path):
    # given two "gunicorn workers" sharing PROMETHEUS_MULTIPROC_DIR
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    for requests in (3, 4):
        served = run_portal(["-c", SERVE_REQUESTS, str(requests)], env)
        assert served.returncode == 0, served.stderr
    assert len(list(multiproc.glob("*.db"))) >= 2  # one file set per process

    # when a third process answers the scrape
    scraped = run_portal(["-c", SCRAPE], env)

    # then it reports the sum over all of them
    assert scraped.returncode == 0, scraped.stderr
    assert (
        'interchange_http_responses_total{method="GET",route="healthz",status="200"} 7.0'
        in scraped.stdout
    )
    assert 'interchange_http_request_seconds_count{method="GET",route="healthz"} 7.0' in (
        scraped.stdout
    )
