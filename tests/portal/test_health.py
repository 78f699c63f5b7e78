import pytest


@pytest.mark.django_db
def test_healthz_answers_without_touching_services(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert len(response["X-Request-ID"]) == 32


@pytest.mark.django_db
def test_readyz_checks_the_database(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["database"] == "ok"


def test_a_sane_incoming_request_id_is_kept_and_a_hostile_one_replaced(client):
    kept = client.get("/healthz", HTTP_X_REQUEST_ID="abc123def456")
    assert kept["X-Request-ID"] == "abc123def456"
    replaced = client.get("/healthz", HTTP_X_REQUEST_ID="x\r\nSet-Cookie: a=b")
    assert replaced["X-Request-ID"] != "x\r\nSet-Cookie: a=b"


@pytest.mark.django_db
def test_readyz_is_unavailable_and_names_redis_when_redis_does_not_answer(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("error: ")
    assert "worker" not in body


@pytest.mark.django_db
def test_readyz_checks_redis_when_configured(client, settings, redis_url):
    settings.REDIS_URL = redis_url

    body = client.get("/readyz").json()

    assert body["checks"] == {"database": "ok", "redis": "ok"}
    assert set(body["worker"]) == {"last_heartbeat", "age_seconds"}
