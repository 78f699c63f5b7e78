"""LTI schedules for celery beat (merged into CELERY_BEAT_SCHEDULE by portal/settings.py)."""

from __future__ import annotations

from celery.schedules import crontab

BEAT_SCHEDULE = {
    "lti.records_prune": {"task": "lti.records_prune", "schedule": crontab(minute=41, hour=3)},
}
