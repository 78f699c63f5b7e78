"""Roster schedules for celery beat (merged into CELERY_BEAT_SCHEDULE by portal/settings.py)."""

from __future__ import annotations

from celery.schedules import crontab

BEAT_SCHEDULE = {
    "roster.drop_folder_scan": {"task": "roster.drop_folder_scan", "schedule": 60.0},
    "roster.staged_files_purge": {
        "task": "roster.staged_files_purge",
        "schedule": crontab(minute=17, hour=3),
    },
}
