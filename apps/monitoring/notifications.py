"""Alert channels: email (Django mail) and a webhook signed with HMAC-SHA256.

Each open alert at or above a channel's severity is sent to it once; a failed attempt is
recorded and retried on the next run (up to ``MAX_ATTEMPTS``), and never raises into the
caller, so a broken mail server or receiver cannot stop rule evaluation.

Webhook signature: ``X-Interchange-Signature: sha256=<hex HMAC of "<timestamp>.<body>">``
with ``X-Interchange-Timestamp``, so a receiver can refuse replays of old bodies.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Count
from django.urls import reverse

from apps.alerts.models import Alert, AlertState, Severity
from apps.monitoring import metrics
from apps.monitoring.models import AlertChannel, AlertNotification, ChannelKind

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
WEBHOOK_TIMEOUT_SECONDS = 5
SIGNATURE_HEADER = "X-Interchange-Signature"
TIMESTAMP_HEADER = "X-Interchange-Timestamp"
ERROR_WEBHOOK_SCHEME = "webhook URL must be http or https, got {!r}"
_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def alert_payload(alert: Alert) -> dict:
    """What leaves the hub about an alert: no personal data, by the alert's own contract."""
    try:
        path = reverse("admin:alerts_alert_change", args=[alert.pk])
    except Exception:  # noqa: BLE001 - the link is a convenience
        path = ""
    return {
        "id": alert.pk, "rule": alert.rule, "severity": alert.severity,
        "subject": alert.subject, "state": alert.state, "occurrences": alert.occurrences,
        "first_seen_at": alert.first_seen_at.isoformat(),
        "last_seen_at": alert.last_seen_at.isoformat(),
        "details": alert.details, "evidence": alert.evidence,
        "url": (settings.INTERCHANGE_PUBLIC_URL.rstrip("/") + path)
        if path and getattr(settings, "INTERCHANGE_PUBLIC_URL", "") else path,
    }


def _send_email(channel: AlertChannel, alert: Alert) -> int | None:
    recipients = [a.strip() for a in channel.target.split(",") if a.strip()]
    payload = alert_payload(alert)
    body = "\n".join([
        payload["subject"], "",
        f"Severity: {alert.severity}", f"Rule: {alert.rule}",
        f"Seen: {alert.occurrences} time(s), last at {payload['last_seen_at']}",
        *(f"Evidence: {e.get('label')} {e.get('url')}" for e in alert.evidence or []),
        f"Open: {payload['url']}" if payload["url"] else "",
    ])
    send_mail(f"[Interchange {alert.severity}] {alert.subject}"[:200], body,
              settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=False)
    return None


def _send_webhook(channel: AlertChannel, alert: Alert) -> int | None:
    url = channel.target.strip()
    if not url.startswith(("https://", "http://")):
        raise ValueError(ERROR_WEBHOOK_SCHEME.format(url))
    body = json.dumps({"alert": alert_payload(alert)}, sort_keys=True).encode()
    timestamp = str(int(time.time()))
    request = urllib.request.Request(url, data=body, method="POST", headers={  # noqa: S310
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(channel.secret, timestamp, body),
        "User-Agent": "Interchange-alerts/1",
    })
    # the scheme is checked above: never file:// or a custom handler
    opened = urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS)  # noqa: S310
    with opened as response:
        return response.status


_SENDERS = {ChannelKind.EMAIL: _send_email, ChannelKind.WEBHOOK: _send_webhook}


def _due(channel: AlertChannel):  # type: ignore[no-untyped-def]
    allowed = [s for s, rank in _RANK.items() if rank >= _RANK[channel.min_severity]]
    return (
        Alert.objects.filter(state=AlertState.OPEN, severity__in=allowed)
        .exclude(pk__in=AlertNotification.objects.filter(channel=channel, delivered=True)
                 .values("alert_id"))
        .exclude(pk__in=AlertNotification.objects.filter(channel=channel, delivered=False)
                 .values("alert_id").annotate(n=Count("id")).filter(n__gte=MAX_ATTEMPTS)
                 .values("alert_id"))
        .order_by("first_seen_at", "id")[: channel.max_per_run]
    )


def notification_send(*, channel: AlertChannel, alert: Alert) -> AlertNotification:
    """Send one alert through one channel and record the attempt (never raises)."""
    try:
        status = _SENDERS[channel.kind](channel, alert)
    except urllib.error.HTTPError as exc:
        outcome = AlertNotification(channel=channel, alert=alert, delivered=False,
                                    status_code=exc.code, error=f"HTTP {exc.code}")
    except Exception as exc:  # noqa: BLE001 - any transport failure is recorded, not raised
        logger.warning("alert %s via %s failed: %s", alert.pk, channel.name, exc)
        outcome = AlertNotification(channel=channel, alert=alert, delivered=False,
                                    error=f"{type(exc).__name__}: {exc}"[:1000])
    else:
        outcome = AlertNotification(channel=channel, alert=alert, delivered=True,
                                    status_code=status)
    outcome.save()
    metrics.NOTIFICATIONS.labels(channel.kind, "sent" if outcome.delivered else "failed").inc()
    return outcome


def notifications_send() -> dict[str, dict[str, int]]:
    """Send what each enabled channel is due (the beat task); return counts per channel."""
    report: dict[str, dict[str, int]] = {}
    for channel in AlertChannel.objects.filter(enabled=True):
        sent = failed = 0
        for alert in _due(channel):
            if notification_send(channel=channel, alert=alert).delivered:
                sent += 1
            else:
                failed += 1
        report[channel.name] = {"sent": sent, "failed": failed}
    return report
