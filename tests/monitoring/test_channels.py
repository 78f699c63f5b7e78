"""Alert channels: email and a signed webhook, each alert sent once per channel, filtered by
severity, rate-limited; a failing channel is recorded and never stops the rules."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail

from apps.alerts.alerts import alert_acknowledge, raise_alert
from apps.monitoring import notifications
from apps.monitoring.models import AlertChannel, AlertNotification, ChannelKind
from apps.monitoring.tasks import notifications_send

pytestmark = pytest.mark.django_db
SECRET = "webhook-shared-secret-for-tests"


class _Receiver(BaseHTTPRequestHandler):
    """The far side of the webhook: records what it was sent, answers with ``status``."""

    received: list[dict] = []
    status = 204

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append({"headers": dict(self.headers), "body": body})
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver():  # type: ignore[no-untyped-def]
    handler = type("Receiver", (_Receiver,), {"received": [], "status": 204})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}/hooks/interchange"
    server.shutdown()
    server.server_close()


def _webhook(url: str, **kwargs: object) -> AlertChannel:
    return AlertChannel.objects.create(name="ops-webhook", kind=ChannelKind.WEBHOOK, target=url,
                                       secret=SECRET, **kwargs)


def _email(**kwargs: object) -> AlertChannel:
    return AlertChannel.objects.create(name="dpo-mail", kind=ChannelKind.EMAIL,
                                       target="dpo@school.example, it@school.example", **kwargs)


def test_an_alert_is_emailed_once_to_every_address_of_the_channel():
    _email()
    alert = raise_alert(rule="monitoring.token_failures", subject="25 refused token requests",
                        severity="critical")

    first = notifications_send.delay().get()
    second = notifications_send.delay().get()

    assert first == {"dpo-mail": {"sent": 1, "failed": 0}}
    assert second == {"dpo-mail": {"sent": 0, "failed": 0}}
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["dpo@school.example", "it@school.example"]
    assert message.subject == "[Interchange critical] 25 refused token requests"
    assert f"/admin/alerts/alert/{alert.pk}/change/" in message.body


def test_the_webhook_is_signed_with_hmac_over_timestamp_and_body(receiver):
    handler, url = receiver
    _webhook(url)
    alert = raise_alert(rule="monitoring.access_volume", subject="Pulled 5x its usual volume",
                        details={"integration_id": 7, "records": 5000})

    report = notifications.notifications_send()

    assert report == {"ops-webhook": {"sent": 1, "failed": 0}}
    [request] = handler.received
    body, headers = request["body"], request["headers"]
    timestamp = headers["X-Interchange-Timestamp"]
    expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    assert headers["X-Interchange-Signature"] == "sha256=" + expected.hexdigest()
    payload = json.loads(body)["alert"]
    assert payload["id"] == alert.pk
    assert payload["details"] == {"integration_id": 7, "records": 5000}
    assert AlertNotification.objects.get().status_code == 204


def test_a_body_altered_in_transit_does_not_match_the_signature(receiver):
    handler, url = receiver
    _webhook(url)
    raise_alert(rule="monitoring.import_held", subject="Held for 30 hours")
    notifications.notifications_send()
    [request] = handler.received
    timestamp = request["headers"]["X-Interchange-Timestamp"]

    forged = request["body"].replace(b"Held", b"Fine")

    assert notifications.sign(SECRET, timestamp, forged) != request["headers"][
        "X-Interchange-Signature"
    ]


def test_each_channel_only_gets_the_severities_it_asked_for(receiver):
    handler, url = receiver
    _webhook(url, min_severity="critical")
    _email(min_severity="info")
    raise_alert(rule="monitoring.excluded_attempts", subject="12 records withheld",
                severity="info")
    raise_alert(rule="monitoring.delivery_lag", subject="Destination behind", severity="critical")

    report = notifications.notifications_send()

    assert report == {"dpo-mail": {"sent": 2, "failed": 0},
                      "ops-webhook": {"sent": 1, "failed": 0}}
    assert json.loads(handler.received[0]["body"])["alert"]["subject"] == "Destination behind"


def test_a_burst_is_rate_limited_per_run_and_the_rest_follows_next_run():
    _email(max_per_run=3)
    for n in range(5):
        raise_alert(rule="monitoring.token_failures", subject=f"client {n}")

    assert notifications.notifications_send() == {"dpo-mail": {"sent": 3, "failed": 0}}
    assert notifications.notifications_send() == {"dpo-mail": {"sent": 2, "failed": 0}}


def test_acknowledged_alerts_are_not_sent(staff_user_factory):
    _email()
    alert = raise_alert(rule="monitoring.token_failures", subject="client x")
    alert_acknowledge(alert=alert, actor=staff_user_factory(role="governance"))

    assert notifications.notifications_send() == {"dpo-mail": {"sent": 0, "failed": 0}}


def test_a_failing_receiver_is_recorded_and_retried_without_raising(receiver):
    handler, url = receiver
    handler.status = 500
    channel = _webhook(url)
    raise_alert(rule="monitoring.token_failures", subject="client x")

    failed = notifications.notifications_send()
    handler.status = 200
    retried = notifications.notifications_send()

    assert failed == {"ops-webhook": {"sent": 0, "failed": 1}}
    assert retried == {"ops-webhook": {"sent": 1, "failed": 0}}
    attempts = list(channel.notifications.order_by("id").values_list("delivered", "status_code"))
    assert attempts == [(False, 500), (True, 200)]


def test_an_unreachable_receiver_and_a_broken_mail_server_are_recorded(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2
    AlertChannel.objects.create(name="dead-hook", kind=ChannelKind.WEBHOOK,
                                target="http://127.0.0.1:1/nowhere", secret=SECRET)
    _email()
    raise_alert(rule="monitoring.token_failures", subject="client x")

    report = notifications.notifications_send()

    assert report == {"dead-hook": {"sent": 0, "failed": 1}, "dpo-mail": {"sent": 0, "failed": 1}}
    errors = set(AlertNotification.objects.values_list("error", flat=True))
    assert all("Error" in e for e in errors), errors


def test_a_channel_gives_up_on_an_alert_after_the_maximum_attempts():
    AlertChannel.objects.create(name="dead-hook", kind=ChannelKind.WEBHOOK,
                                target="http://127.0.0.1:1/nowhere", secret=SECRET)
    raise_alert(rule="monitoring.token_failures", subject="client x")

    for _ in range(notifications.MAX_ATTEMPTS + 2):
        notifications.notifications_send()

    assert AlertNotification.objects.count() == notifications.MAX_ATTEMPTS


def test_a_webhook_that_is_not_http_is_refused_and_recorded():
    AlertChannel.objects.create(name="file-hook", kind=ChannelKind.WEBHOOK,
                                target="file:///etc/passwd", secret=SECRET)
    raise_alert(rule="monitoring.token_failures", subject="client x")

    assert notifications.notifications_send() == {"file-hook": {"sent": 0, "failed": 1}}
    assert "must be https" in AlertNotification.objects.get().error


def test_outside_the_sandbox_a_webhook_must_be_https(receiver, settings):
    handler, url = receiver
    settings.IS_SANDBOX = False
    _webhook(url)
    raise_alert(rule="monitoring.token_failures", subject="client x")

    assert notifications.notifications_send() == {"ops-webhook": {"sent": 0, "failed": 1}}
    assert handler.received == []


# --- the daily digest --------------------------------------------------------------------------


def test_low_severities_go_out_once_a_day_as_one_digest(receiver):
    import datetime as dt

    from django.utils import timezone

    handler, url = receiver
    _webhook(url, min_severity="warning", daily_digest=True)
    _email(min_severity="critical", daily_digest=True)
    raise_alert(rule="monitoring.excluded_attempts", subject="12 records withheld",
                severity="info")
    raise_alert(rule="monitoring.approval_expiry", subject="Approval #3 expires soon",
                severity="warning")
    morning = timezone.now()

    first = notifications.digests_send(now=morning)
    later_that_day = notifications.digests_send(now=morning + dt.timedelta(hours=5))
    raise_alert(rule="monitoring.excluded_attempts", subject="3 records withheld",
                severity="info")
    next_morning = notifications.digests_send(now=morning + dt.timedelta(days=1))

    # the webhook (warning and up sent at once) digests the info alerts; the email (critical
    # only) digests info and warning alike
    assert first == {"ops-webhook": 1, "dpo-mail": 2}
    assert later_that_day == {}
    assert next_morning == {"ops-webhook": 1, "dpo-mail": 1}
    digest = json.loads(handler.received[0]["body"])["digest"]
    assert [a["subject"] for a in digest] == ["12 records withheld"]
    assert mail.outbox[0].subject == "[Interchange] Daily digest: 2 alert(s)"
    assert "Approval #3 expires soon" in mail.outbox[0].body
    assert AlertNotification.objects.filter(digest=True, delivered=True).count() == 5


def test_a_failed_digest_is_recorded_and_sent_on_the_next_run(receiver):
    handler, url = receiver
    handler.status = 503
    _webhook(url, min_severity="critical", daily_digest=True)
    raise_alert(rule="monitoring.excluded_attempts", subject="12 records withheld",
                severity="info")

    assert notifications.digests_send() == {}
    handler.status = 200
    assert notifications.digests_send() == {"ops-webhook": 1}
    attempts = list(AlertNotification.objects.order_by("id").values_list("delivered", "digest"))
    assert attempts == [(False, True), (True, True)]


def test_a_webhook_secret_survives_a_master_key_rotation(settings):
    from apps.keys import services as key_services
    from apps.keys.master import generate_key

    channel = AlertChannel.objects.create(name="hook", kind="webhook", secret=SECRET,
                                          target="https://hooks.example/interchange")
    settings.INTERCHANGE_MASTER_KEY_PREVIOUS = settings.INTERCHANGE_MASTER_KEY
    settings.INTERCHANGE_MASTER_KEY = generate_key()
    key_services.master_key_rotate()
    settings.INTERCHANGE_MASTER_KEY_PREVIOUS = None

    channel.refresh_from_db()
    assert channel.secret == SECRET
