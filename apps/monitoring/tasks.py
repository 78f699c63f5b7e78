"""Celery tasks of the monitoring app: thin calls into services, idempotent by construction."""

from __future__ import annotations

from celery import shared_task

from apps.monitoring import notifications, services


@shared_task(name="monitoring.roster_telemetry")
def roster_telemetry() -> list[int]:
    return services.roster_telemetry_catch_up()


@shared_task(name="monitoring.access_rollup")
def access_rollup() -> int:
    return services.access_activity_rollup_recent()


@shared_task(name="monitoring.rules_evaluate")
def rules_evaluate() -> dict:
    # telemetry first, so the roster rule judges the newest version (the access rules read
    # the hourly aggregate itself, not the daily rollup)
    services.roster_telemetry_catch_up()
    report = services.rules_evaluate()
    return {"fired": report.fired, "failed": report.failed}


@shared_task(name="monitoring.notifications_send")
def notifications_send() -> dict:
    return notifications.notifications_send()


@shared_task(name="monitoring.digests_send")
def digests_send() -> dict:
    return notifications.digests_send()
