"""Monitoring schedules for celery beat (merged into CELERY_BEAT_SCHEDULE by portal/settings.py)."""

from __future__ import annotations

from celery.schedules import crontab

BEAT_SCHEDULE = {
    # new roster versions get their telemetry within a minute of being applied
    "monitoring.roster_telemetry": {"task": "monitoring.roster_telemetry", "schedule": 60.0},
    "monitoring.access_rollup": {"task": "monitoring.access_rollup", "schedule": 300.0},
    "monitoring.rules_evaluate": {"task": "monitoring.rules_evaluate", "schedule": 300.0},
    "monitoring.notifications_send": {
        "task": "monitoring.notifications_send", "schedule": 60.0,
    },
    # low severities, once a day, before the school day starts
    "monitoring.digests_send": {
        "task": "monitoring.digests_send", "schedule": crontab(minute=0, hour=7),
    },
}
