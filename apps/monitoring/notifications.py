"""Alert channels: email (Django mail) and a webhook signed with HMAC-SHA256.

Each open alert at or above a channel's severity is sent to it once; a failed attempt is
recorded and retried on the next run (up to ``MAX_ATTEMPTS``), and never raises into the
caller, so a broken mail server or receiver cannot stop rule evaluation.

Channels with ``daily_digest`` also get the alerts below their severity, once a day, as
one message (``digests_send``).

Webhook signature: ``X-Interchange-Signature: sha256=<hex HMAC of "<timestamp>.<body>">``
with ``X-Interchange-Timestamp``, so a receiver can refuse replays of old bodies.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone

from apps.alerts.models import Alert, AlertState, Severity
from apps.monitoring import metrics
from apps.monitoring.models import AlertChannel, AlertNotification, ChannelKind

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
WEBHOOK_TIMEOUT_SECONDS = 5
SIGNATURE_HEADER = "X-Interchange-Signature"
TIMESTAMP_HEADER = "X-Interchange-Timestamp"
ERROR_WEBHOOK_SCHEME = "webhook URL must be https (http in the sandbox only), got {!r}"
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


def _post_webhook(channel: AlertChannel, payload: dict) -> int | None:
    url = channel.target.strip()
    # plain http only in the sandbox (local receivers); elsewhere the body must not travel bare
    allowed = ("https://", "http://") if settings.IS_SANDBOX else ("https://",)
    if not url.startswith(allowed):
        raise ValueError(ERROR_WEBHOOK_SCHEME.format(url))
    body = json.dumps(payload, sort_keys=True).encode()
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
    return _post_webhook(channel, {"alert": alert_payload(alert)})


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


# --- the daily digest ------------------------------------------------------------------------

DIGEST_EVERY = dt.timedelta(hours=23)  # a little under a day, so a daily beat never skips one


def _digest_due(channel: AlertChannel):  # type: ignore[no-untyped-def]
    below = [s for s, rank in _RANK.items() if rank < _RANK[channel.min_severity]]
    return (
        Alert.objects.filter(state=AlertState.OPEN, severity__in=below)
        .exclude(pk__in=AlertNotification.objects.filter(channel=channel, delivered=True)
                 .values("alert_id"))
        .order_by("first_seen_at", "id")
    )


def _send_digest(channel: AlertChannel, alerts: list[Alert]) -> int | None:
    if channel.kind == ChannelKind.WEBHOOK:
        return _post_webhook(channel, {"digest": [alert_payload(a) for a in alerts]})
    lines = [f"{len(alerts)} open alert(s) below {channel.min_severity}:", ""]
    for alert in alerts:
        payload = alert_payload(alert)
        lines.append(
            f"- [{alert.severity}] {alert.subject} ({alert.occurrences}x) {payload['url']}"
        )
    send_mail(f"[Interchange] Daily digest: {len(alerts)} alert(s)", "\n".join(lines),
              settings.DEFAULT_FROM_EMAIL,
              [a.strip() for a in channel.target.split(",") if a.strip()], fail_silently=False)
    return None


def digests_send(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Send each digest channel its low-severity alerts, at most once a day; return how many
    alerts each digest carried. A failed digest is recorded and tried again next run."""
    now = now or timezone.now()
    report: dict[str, int] = {}
    channels = AlertChannel.objects.filter(enabled=True, daily_digest=True).filter(
        Q(digest_sent_at__isnull=True) | Q(digest_sent_at__lte=now - DIGEST_EVERY)
    )
    for channel in channels:
        alerts = list(_digest_due(channel)[:200])
        if alerts:
            status, error = None, ""
            try:
                status = _send_digest(channel, alerts)
            except urllib.error.HTTPError as exc:
                status, error = exc.code, f"HTTP {exc.code}"
            except Exception as exc:  # noqa: BLE001 - recorded, never raised into the beat
                logger.warning("digest via %s failed: %s", channel.name, exc)
                error = f"{type(exc).__name__}: {exc}"[:1000]
            AlertNotification.objects.bulk_create([
                AlertNotification(channel=channel, alert=a, delivered=not error, digest=True,
                                  status_code=status, error=error)
                for a in alerts
            ])
            metrics.NOTIFICATIONS.labels(channel.kind, "failed" if error else "sent").inc()
            if error:
                continue
        AlertChannel.objects.filter(pk=channel.pk).update(digest_sent_at=now)
        report[channel.name] = len(alerts)
    return report
