"""The governance app's periodic tasks, merged into CELERY_BEAT_SCHEDULE by portal/settings.py.

Kept free of Django imports so settings can read it.
"""

from __future__ import annotations

from celery.schedules import crontab

BEAT_SCHEDULE = {
    # Exclusions stop applying by themselves at their end; this only reminds and records.
    "governance.exclusions_sweep": {
        "task": "governance.exclusions_sweep",
        "schedule": crontab(minute=17),
    },
}

# Scope approvals: expiry notices to vendors (30 days ahead) and expiries, daily at 06:40 UTC.
BEAT_SCHEDULE["governance.scope_requests_sweep"] = {
    "task": "governance.scope_requests_sweep",
    "schedule": crontab(hour=6, minute=40),
}
