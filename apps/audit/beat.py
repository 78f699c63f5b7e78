"""The audit app's periodic tasks, merged into CELERY_BEAT_SCHEDULE by portal/settings.py.

Kept free of Django imports so settings can read it.
"""

from __future__ import annotations

from celery.schedules import crontab

BEAT_SCHEDULE = {
    # Chain events whose post-commit flush never ran (a crash between commit and flush).
    "audit.flush_pending": {"task": "audit.flush_pending", "schedule": 60.0},
    # Keep the recent access log bounded; the hourly aggregates stay.
    "audit.prune_access_log": {
        "task": "audit.prune_access_log",
        "schedule": crontab(hour=3, minute=17),
    },
}
