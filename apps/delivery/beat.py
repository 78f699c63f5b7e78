"""Delivery schedules for celery beat (merged into CELERY_BEAT_SCHEDULE by portal/settings.py)."""

from __future__ import annotations

from celery.schedules import crontab

BEAT_SCHEDULE = {
    # event-driven mode: applied versions reach subscribed destinations within seconds
    "delivery.outbox_relay": {
        "task": "delivery.outbox_relay", "schedule": 10.0, "options": {"expires": 10},
    },
    # scheduled destinations and due retries
    "delivery.schedule_tick": {
        "task": "delivery.schedule_tick", "schedule": 60.0, "options": {"expires": 60},
    },
    "delivery.sources_poll": {
        "task": "delivery.sources_poll", "schedule": 60.0, "options": {"expires": 60},
    },
    "delivery.bundles_purge": {
        "task": "delivery.bundles_purge", "schedule": crontab(minute=37, hour=3),
    },
}
