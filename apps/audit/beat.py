"""The audit app's periodic tasks, merged into CELERY_BEAT_SCHEDULE by portal/settings.py.

Kept free of Django imports so settings can read it.
"""

from __future__ import annotations

BEAT_SCHEDULE = {
    # Chain events whose post-commit flush never ran (a crash between commit and flush).
    "audit.flush_pending": {"task": "audit.flush_pending", "schedule": 60.0},
}
